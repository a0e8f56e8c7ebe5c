"""The Train page's form: model choice and hyperparameters, kept in session state under
`train_*` keys, so a cloned run can fill them in and they survive switching pages."""

from __future__ import annotations

import dataclasses

import streamlit as st

from core.config import AUTO_BATCH, DEFAULT_LR, OPTIMIZERS, SCHEDULES, TrainConfig
from core.data.cache import default_image_size
from core.data.dataset import Dataset, load_dataset
from core.runs.record import run_folder
from core.training.device import visible_gpus
from core.training.model_card import read_model_card
from core.training.recipes import RECIPES, recipe_settings, suggested_recipe
from models import (
    PRETRAINED_NAME,
    create_model,
    describe_model,
    list_presets,
    list_timm_models,
    model_profile,
)
from models.pretrained import TIMM_ARCH as LITE0_TIMM_ARCH
from pages._common import count, has_model, pct, plain
from pages._layer_editor import layer_editor, load_spec_into_editor

KINDS = ["Preset", "timm architecture", "Pretrained EfficientNet-Lite0", "Custom layers"]
CUSTOM_NAME = "custom-cnn"
FROM_SCRATCH = ""  # the init_from choice "no earlier run"
LITE0_FAMILY = {PRETRAINED_NAME, LITE0_TIMM_ARCH}  # the same network, same layer names
IMAGE_SIZES = [0, 16, 24, 28, 32, 48, 64, 96, 128, 160, 192, 224, 256]  # 0: the dataset's own
DEFAULTS = TrainConfig(data="")
DEFAULT_EMA_DECAY = 0.999
SPECIAL = ("data", "model", "extra", "name", "ema_decay")  # fields with widgets of their own
KEEP = "session"  # widget values survive a visit to another page
RANGES = {  # the form's number widgets: (lowest, highest); a cloned value is clamped to them
    "epochs": (1, 100_000), "batch_size": (1, 65_536), "weight_decay": (0.0, 1.0),
    "momentum": (0.0, 0.999), "label_smoothing": (0.0, 0.5), "warmup_epochs": (0.0, 100.0),
    "step_size": (1, 1000), "gamma": (0.01, 1.0), "pad_crop": (0, 8), "jitter": (0.0, 0.5),
    "patience": (0, 100), "seed": (0, 2**31 - 1), "freeze_epochs": (0, 100),
    "ema_value": (0.5, 0.99999),
}


def state_default(key: str, value: object) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def apply_clone(config: dict) -> None:
    """Fill the form from a run's config (the Runs page's Clone button)."""
    for field in dataclasses.fields(TrainConfig):
        if field.name in config and field.name not in SPECIAL:
            st.session_state[f"train_{field.name}"] = within_range(field.name, config[field.name])
    auto_batch = config.get("batch_size") == AUTO_BATCH
    st.session_state["train_auto_batch"] = auto_batch
    if auto_batch:
        st.session_state["train_batch_size"] = DEFAULTS.batch_size
    ema_decay = config.get("ema_decay")
    st.session_state["train_ema"] = ema_decay is not None
    st.session_state["train_ema_value"] = within_range("ema_value", ema_decay or DEFAULT_EMA_DECAY)
    st.session_state["train_recipe"] = config.get("recipe")
    st.session_state["train_lr"] = config.get("lr") or DEFAULT_LR[config.get("optimizer", "adamw")]
    st.session_state["train_image_size"] = config.get("image_size") or 0
    st.session_state["train_name"] = ""
    st.session_state["train_data"] = config.get("data")
    model, spec = config.get("model", "tiny-cnn"), (config.get("extra") or {}).get("spec")
    if spec:
        st.session_state["train_kind"] = "Custom layers"
        load_spec_into_editor(spec)
    elif model == PRETRAINED_NAME:
        st.session_state["train_kind"] = "Pretrained EfficientNet-Lite0"
    elif model in list_presets():
        st.session_state.update(train_kind="Preset", train_preset=model)
    elif model in list_timm_models():
        st.session_state.update(train_kind="timm architecture", train_timm=model)


def use_recipe(name: str, data: str) -> None:
    """The recipe buttons' callback: fill the whole form from recipe `name` for dataset `data`."""
    try:
        settings = recipe_settings(name, load_dataset(data))
    except ValueError as error:
        st.session_state["recipe_note"] = ("error", plain(error))
        return
    apply_clone(settings | {"data": data})
    st.session_state["recipe_note"] = (
        "success", f"The form holds the {RECIPES[name].title} recipe for {data}; change what "
                   "you like and start.")


def recipe_picker(data: str) -> None:
    """One click fills the form with a recipe adapted to the dataset (core.training.recipes)."""
    cols = st.columns([2, *[1] * len(RECIPES)], vertical_alignment="center")
    cols[0].markdown("**Recipes** — one click fills the form below for this dataset")
    suggested = suggested_recipe(visible_gpus() > 0)
    for col, recipe in zip(cols[1:], RECIPES.values(), strict=True):
        col.button(recipe.title, key=f"recipe_{recipe.name}", help=recipe.description,
                   icon=":material/bolt:", on_click=use_recipe, args=(recipe.name, data),
                   type="primary" if recipe.name == suggested else "secondary",
                   width="stretch")
    note = st.session_state.pop("recipe_note", None)
    if note:
        (st.success if note[0] == "success" else st.error)(note[1])


def within_range(name: str, value: object) -> object:
    if name not in RANGES or not isinstance(value, int | float) or isinstance(value, bool):
        return value
    low, high = RANGES[name]
    return type(low)(min(max(value, low), high))


def number(column, label: str, name: str, **options) -> None:
    """A number input for TrainConfig field `name`, within RANGES."""
    low, high = RANGES[name]
    column.number_input(label, low, high, key=f"train_{name}", persist_state=KEEP, **options)


@st.cache_data(max_entries=64, show_spinner="Measuring the model…")
def profile(model: str, in_chans: int, num_classes: int, image_size: int) -> dict:
    net = create_model(model, in_chans=in_chans, num_classes=num_classes, image_size=image_size)
    return model_profile(net, in_chans=in_chans, image_size=image_size)


def show_profile(model: str, dataset: Dataset, image_size: int) -> None:
    try:
        numbers = profile(model, dataset.channels, len(dataset.classes), image_size)
    except ValueError as error:  # ModelError: this model cannot take these images
        st.error(plain(error))
        return
    cols = st.columns(2)
    cols[0].metric("Parameters", count(numbers["params"]))
    cols[1].metric("FLOPs per image", count(numbers["flops"]))


def model_picker(dataset: Dataset, image_size: int) -> tuple[str, dict | None]:
    """The chosen model name and, for custom layers, its spec (None while it does not build)."""
    state_default("train_kind", "Preset")
    kind = st.segmented_control("Model", KINDS, key="train_kind", persist_state=KEEP)
    kind = kind or "Preset"
    if kind == "Custom layers":
        spec = layer_editor(dataset.channels, image_size, len(dataset.classes))
        return CUSTOM_NAME, spec
    if kind == "Preset":
        presets = list_presets()
        state_default("train_preset", presets[0])
        model = st.selectbox("Preset", presets, key="train_preset", persist_state=KEEP)
    elif kind == "timm architecture":
        names = list_timm_models()
        state_default("train_timm", "resnet18" if "resnet18" in names else names[0])
        model = st.selectbox(f"Architecture (type to search {len(names):,} timm models)", names,
                             key="train_timm", persist_state=KEEP)
    else:
        model = PRETRAINED_NAME
        if image_size < 96:
            st.warning(f"The pretrained network saw 224 px photos; at {image_size} px it has "
                       "little to work with. Choose an image size of 96–224 px below.")
    st.caption(describe_model(model))
    show_profile(model, dataset, image_size)
    return model, None


def same_network(model: str, run: dict) -> bool:
    """Whether `run`'s weights were trained on the network `model` names (a custom network:
    any custom run; layers whose shapes differ start fresh)."""
    other = run["config"].get("model")
    return other == model or {model, other} <= LITE0_FAMILY


def source_classes(run_id: str) -> list[str]:
    try:
        return read_model_card(run_folder(run_id))["classes"]
    except (OSError, ValueError, KeyError):
        return []


def init_caption(source: list[str], target: list[str]) -> str:
    """What starting from a run with classes `source` keeps, for a dataset with `target`.
    (core.training.prepare.load_matching_weights keeps every layer whose shape matches.)"""
    if source == target:
        return ("Same classes as this dataset: every layer starts from that run, the classifier "
                "head included.")
    if len(source) != len(target):
        return (f"That run learned {len(source)} classes, this dataset has {len(target)}: the "
                "classifier head is new (randomly initialised); every other layer starts from "
                "that run's weights.")
    return ("That run learned other classes, as many as this dataset has: every layer starts "
            "from its weights, the head too, and fine-tuning re-learns what its outputs mean.")


def transfer_settings(model: str, dataset: Dataset, runs: list[dict]) -> None:
    """Start from an earlier run's weights (init_from) and, for a timm network starting from
    trained weights, how many epochs the backbone stays frozen (freeze_epochs)."""
    sources = [run for run in runs if run["status"] == "completed" and has_model(run)
               and same_network(model, run)]
    by_id = {run["run_id"]: run for run in sources}
    options = [FROM_SCRATCH, *by_id]  # a select box shows a None value as "no choice"
    state_default("train_init_from", FROM_SCRATCH)
    if st.session_state["train_init_from"] not in options:
        st.session_state["train_init_from"] = FROM_SCRATCH  # another network's run, or deleted
    scratch = "No: the ImageNet weights" if model == PRETRAINED_NAME else "No: random weights"
    cols = st.columns([2, 1])
    init_from = cols[0].selectbox(
        "Start from an earlier run's weights", options, key="train_init_from",
        persist_state=KEEP,
        format_func=lambda run_id: scratch if not run_id
        else f"{by_id[run_id]['name']} · {by_id[run_id]['data']} · test "
             f"{pct(by_id[run_id]['test_acc'])}",
        help="Completed runs of this same network. Its layers start from that run's weights.")
    if init_from:
        classes = source_classes(init_from)
        cols[0].caption(init_caption(classes, dataset.classes))
    elif not sources:
        cols[0].caption("No completed run of this network yet to start from.")
    timm_network = model not in list_presets() and model != CUSTOM_NAME
    can_freeze = model == PRETRAINED_NAME or (bool(init_from) and timm_network)
    state_default("train_freeze_epochs", DEFAULTS.freeze_epochs)
    if not can_freeze:
        st.session_state["train_freeze_epochs"] = 0  # only a trained backbone is worth freezing
        return
    number(cols[1], "Frozen-backbone epochs", "freeze_epochs",
           help="Train only the new head for this many epochs, then unfreeze and fine-tune "
                "everything: the head's random start cannot wreck the trained features. "
                "1–2 is typical; 0 fine-tunes everything from the start.")


def on_optimizer_change() -> None:
    st.session_state["train_lr"] = DEFAULT_LR[st.session_state["train_optimizer"]]


def main_settings(dataset: Dataset) -> None:
    for key in ("epochs", "batch_size", "optimizer", "schedule"):
        state_default(f"train_{key}", getattr(DEFAULTS, key))
    state_default("train_auto_batch", False)
    state_default("train_lr", DEFAULT_LR[st.session_state["train_optimizer"]])
    state_default("train_image_size", 0)
    own = default_image_size(dataset)
    cols = st.columns(3)
    number(cols[0], "Epochs", "epochs")
    auto = st.session_state["train_auto_batch"]
    number(cols[1], "Batch size", "batch_size", disabled=auto)
    cols[1].checkbox("Auto: the largest that fits the GPU", key="train_auto_batch",
                     persist_state=KEEP,
                     help="Found once per model, image size and GPU by trying training steps, "
                          "then remembered. On a CPU: 128 (or the training set, if smaller).")
    sizes = sorted({*IMAGE_SIZES, st.session_state["train_image_size"]})  # a clone's own size too
    cols[2].selectbox("Image size", sizes, key="train_image_size", persist_state=KEEP,
                      format_func=lambda s: f"dataset's own ({own} px)" if s == 0 else f"{s} px")
    cols = st.columns(3)
    cols[0].selectbox("Optimizer", OPTIMIZERS, key="train_optimizer", persist_state=KEEP,
                      on_change=on_optimizer_change)
    cols[1].number_input("Peak learning rate", min_value=1e-6, max_value=10.0, format="%g",
                         step=1e-4, key="train_lr", persist_state=KEEP,
                         help="The schedule scales this over the run; see the preview.")
    cols[2].selectbox("Schedule", SCHEDULES, key="train_schedule", persist_state=KEEP)


def more_settings() -> None:
    names = ("weight_decay", "momentum", "warmup_epochs", "step_size", "gamma",
             "label_smoothing", "flip", "pad_crop", "jitter", "patience", "seed", "device",
             "precision", "compile", "tta_flip")
    for key in names:
        state_default(f"train_{key}", getattr(DEFAULTS, key))
    state_default("train_ema", False)
    state_default("train_ema_value", DEFAULT_EMA_DECAY)
    state_default("train_name", "")
    with st.expander("More settings: regularisation, augmentation, device"):
        cols = st.columns(3)
        number(cols[0], "Weight decay", "weight_decay", format="%g")
        number(cols[1], "Momentum (sgd, rmsprop)", "momentum")
        number(cols[2], "Label smoothing", "label_smoothing", step=0.05)
        cols = st.columns(3)
        number(cols[0], "Warm-up epochs", "warmup_epochs", step=0.5,
               help="cosine, step and constant schedules")
        number(cols[1], "Step size (epochs)", "step_size",
               help="step schedule: epochs between decays")
        number(cols[2], "Step decay factor", "gamma")
        cols = st.columns(3)
        cols[0].checkbox("Random horizontal flip", key="train_flip", persist_state=KEEP)
        cols[1].slider("Random shift (pixels)", *RANGES["pad_crop"], key="train_pad_crop",
                       persist_state=KEEP)
        cols[2].slider("Colour jitter", *RANGES["jitter"], step=0.05, key="train_jitter",
                       persist_state=KEEP)
        cols = st.columns(3)
        number(cols[0], "Early stopping patience (0 = off)", "patience")
        number(cols[1], "Seed", "seed")
        cols[2].checkbox("Flip test-time augmentation", key="train_tta_flip", persist_state=KEEP,
                         help="Evaluate each image and its mirror image, averaging the two.")
        cols = st.columns(3)
        cols[0].checkbox("EMA of the weights", key="train_ema", persist_state=KEEP,
                         help="Validate, test and keep as best an exponential moving average "
                              "of the weights: often steadier and a little more accurate.")
        number(cols[1], "EMA decay", "ema_value", format="%g", step=0.001,
               disabled=not st.session_state["train_ema"],
               help="Closer to 1 averages over more steps (0.999: about the last 1,000).")
        cols = st.columns(3)
        cols[0].selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="train_device",
                          persist_state=KEEP)
        cols[1].selectbox("Precision", ["auto", "fp32", "bf16"], key="train_precision",
                          persist_state=KEEP)
        cols[2].checkbox("Fastest (torch.compile)", key="train_compile", persist_state=KEEP,
                         help="Compile the network; on a GPU with small images also capture "
                              "CUDA graphs. Falls back to plain training if compiling fails.")
        gpus_setting()
        st.text_input("Run name (optional)", key="train_name", max_chars=100, persist_state=KEEP)


def gpus_setting() -> None:
    """"GPUs: N", offered only where several are visible: the worker then trains the run
    data-parallel through torchrun."""
    visible = visible_gpus()
    if visible < 2:
        st.session_state["train_gpus"] = 1  # e.g. a clone of a run from a bigger machine
        return
    state_default("train_gpus", 1)
    st.session_state["train_gpus"] = min(max(int(st.session_state["train_gpus"]), 1), visible)
    st.number_input("GPUs", 1, visible, key="train_gpus", persist_state=KEEP,
                    help="Train this one run on several GPUs at once (torchrun, data-parallel). "
                         "The batch size is the global batch, split evenly across them, so it "
                         "must be a multiple of this; the learning rate is not scaled.")


def form_config(data: str, model: str, spec: dict | None) -> TrainConfig:
    """The TrainConfig the form describes right now."""
    state = st.session_state
    values = {field.name: state[f"train_{field.name}"] for field in dataclasses.fields(TrainConfig)
              if f"train_{field.name}" in state and field.name not in (*SPECIAL, "image_size")}
    values["init_from"] = values.get("init_from") or None  # FROM_SCRATCH → None
    if state.get("train_auto_batch"):
        values["batch_size"] = AUTO_BATCH
    values["ema_decay"] = state["train_ema_value"] if state.get("train_ema") else None
    return TrainConfig(
        **values, data=data, model=model, image_size=state.get("train_image_size") or None,
        name=(state.get("train_name") or "").strip() or None,
        extra={"spec": spec} if spec else {})
