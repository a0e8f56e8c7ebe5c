"""The Train page's form: model choice and hyperparameters, kept in session state under
`train_*` keys, so a cloned run can fill them in and they survive switching pages. The
settings' widgets come from the config's schema (settings_form); only the model, the
learning rate, the batch size, the image size, the EMA, the starting weights and the GPUs
have widgets of their own."""

from __future__ import annotations

import dataclasses

import streamlit as st

from core.config import (
    AUGMENTATION,
    AUTO_BATCH,
    DEFAULT_LR,
    DEVICE,
    EVALUATION,
    MIN_LR,
    OPTIMISATION,
    TrainConfig,
    default_of,
    settings,
)
from core.data.cache import default_image_size
from core.data.dataset import Dataset, load_dataset
from core.runs.record import run_folder
from core.training.device import visible_gpus
from core.training.lr_find import AUTO_LR_SECONDS, lr_find, two_digits
from core.training.model_card import read_model_card
from core.training.recipes import RECIPES, recipe_settings, suggested_recipe
from core.training.transfer import CUSTOM_NAME, can_freeze, same_network, what_carries_over
from models import (
    OFFERED_NAMES,
    PRETRAINED_NAME,
    PRETRAINED_NAMES,
    create_model,
    describe_model,
    list_presets,
    list_timm_models,
    model_profile,
    model_summary,
)
from models.pretrained import lite_variant
from pages.ui.common import MISSING, USER_ERRORS, count, has_model, pct, plain
from pages.ui.layer_editor import layer_editor, load_spec_into_editor
from pages.ui.settings_form import (
    KEEP,
    group_settings,
    setting_widget,
    settings_row,
    state_default,
    within_range,
)
from pages.ui.weights_choice import weights_settings

PRETRAINED_KIND = "Pretrained EfficientNet-Lite"
KINDS = ["Preset", "timm architecture", PRETRAINED_KIND, "Custom layers"]
FROM_SCRATCH = ""  # the init_from choice "no earlier run"
IMAGE_SIZES = [0, 16, 24, 28, 32, 48, 64, 96, 128, 160, 192, 224, 256]  # 0: the dataset's own
DEFAULT_EMA_DECAY = 0.999
# settings with widgets of their own (or none: data and the recorded recipe and extra)
OWN_WIDGETS = ("data", "model", "lr", "batch_size", "image_size", "ema_decay", "init_from",
               "freeze_epochs", "gpus", "name", "recipe", "extra")
MORE = (OPTIMISATION, AUGMENTATION, EVALUATION, DEVICE)  # the groups under "More settings"

def apply_clone(config: dict) -> None:
    """Fill the form from a run's config (the Runs page's Clone button, a recipe)."""
    if isinstance(config.get("flip"), bool):  # a run from before flip became auto|on|off
        config = config | {"flip": "on" if config["flip"] else "off"}
    for name in settings():
        if name in config and name not in OWN_WIDGETS:
            st.session_state[f"train_{name}"] = within_range(name, config[name])
    auto_batch = config.get("batch_size") == AUTO_BATCH
    st.session_state["train_auto_batch"] = auto_batch
    st.session_state["train_batch_size"] = (default_of("batch_size") if auto_batch else
                                            within_range("batch_size", config.get(
                                                "batch_size", default_of("batch_size"))))
    ema_decay = config.get("ema_decay")
    st.session_state["train_ema"] = ema_decay is not None
    st.session_state["train_ema_decay"] = within_range("ema_decay",
                                                       ema_decay or DEFAULT_EMA_DECAY)
    st.session_state["train_recipe"] = config.get("recipe")
    st.session_state["train_lr"] = config.get("lr") or DEFAULT_LR[config.get("optimizer",
                                                                              "adamw")]
    st.session_state["train_image_size"] = config.get("image_size") or 0
    st.session_state["train_freeze_epochs"] = config.get("freeze_epochs", 0)
    st.session_state["train_init_from"] = config.get("init_from") or FROM_SCRATCH
    st.session_state["train_gpus"] = config.get("gpus", 1)
    st.session_state["train_name"] = ""
    st.session_state["train_data"] = config.get("data")
    apply_model(config.get("model", "tiny-cnn"), (config.get("extra") or {}).get("spec"))


def apply_model(model: str, spec: dict | None) -> None:
    if spec:
        st.session_state["train_kind"] = "Custom layers"
        load_spec_into_editor(spec)
    elif model in OFFERED_NAMES:
        st.session_state.update(train_kind=PRETRAINED_KIND, train_pretrained=model)
    elif model in list_presets():
        st.session_state.update(train_kind="Preset", train_preset=model)
    elif model in list_timm_models():
        st.session_state.update(train_kind="timm architecture", train_timm=model)


def use_recipe(name: str, data: str) -> None:
    """The recipe buttons' callback: fill the whole form from recipe `name` for dataset `data`."""
    try:
        recipe = recipe_settings(name, load_dataset(data))
    except ValueError as error:
        st.session_state["recipe_note"] = ("error", plain(error))
        return
    apply_clone(recipe | {"data": data})
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
    with st.container(key="recipe_note_slot"):  # always drawn: nothing below changes identity
        note = st.session_state.pop("recipe_note", None)
        if note:
            (st.success if note[0] == "success" else st.error)(note[1])


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
    with st.expander("Layers: output shape, parameters and FLOPs of each", key="train_layers_box"):
        layer_table(model, dataset, image_size)


@st.cache_data(max_entries=64, show_spinner="Summarising the layers…")
def layers(model: str, in_chans: int, num_classes: int, image_size: int) -> list[dict]:
    net = create_model(model, in_chans=in_chans, num_classes=num_classes, image_size=image_size)
    return model_summary(net, in_chans=in_chans, image_size=image_size)["layers"]


def layer_table(model: str, dataset: Dataset, image_size: int) -> None:
    """The per-layer summary (models.model_summary), as `python -m core model summary` prints."""
    try:
        rows = layers(model, dataset.channels, len(dataset.classes), image_size)
    except ValueError as error:
        st.error(plain(error))
        return
    st.dataframe([{"layer": row["name"], "type": row["type"],
                   "output shape": "×".join(map(str, row["output_shape"] or [])) or "—",
                   "params": row["params"], "FLOPs": row["flops"]} for row in rows],
                 hide_index=True, placeholder=MISSING, key="train_layers")


def model_picker(dataset: Dataset, image_size: int) -> tuple[str, dict | None]:
    """The chosen model name and, for custom layers, its spec (None while it does not build)."""
    state_default("train_kind", "Preset")
    kind = st.segmented_control(settings()["model"].label, KINDS, key="train_kind",
                                persist_state=KEEP) or "Preset"
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
        state_default("train_pretrained", PRETRAINED_NAME)
        model = st.selectbox("Pretrained network", OFFERED_NAMES, key="train_pretrained",
                             persist_state=KEEP, format_func=lambda name: lite_variant(name).title)
        trained_at = lite_variant(model).input_size
        if image_size < 96:
            st.warning(f"The pretrained network saw {trained_at} px photos; at {image_size} px "
                       f"it has little to work with. Choose an image size of 96–{trained_at} px "
                       "below.")
    st.caption(describe_model(model))
    show_profile(model, dataset, image_size)
    return model, None


def source_classes(run_id: str) -> list[str]:
    try:
        return read_model_card(run_folder(run_id))["classes"]
    except (OSError, ValueError, KeyError):
        return []


def transfer_settings(model: str, dataset: Dataset, runs: list[dict]) -> None:
    """Start from an earlier run's weights (init_from) and, for a trained backbone, how many
    epochs it stays frozen (freeze_epochs)."""
    weights_settings(model)
    sources = [run for run in runs if run["status"] == "completed" and has_model(run)
               and same_network(model, run["config"].get("model"))]
    by_id = {run["run_id"]: run for run in sources}
    options = [FROM_SCRATCH, *by_id]  # a select box shows a None value as "no choice"
    state_default("train_init_from", FROM_SCRATCH)
    if st.session_state["train_init_from"] not in options:
        st.session_state["train_init_from"] = FROM_SCRATCH  # another network's run, or deleted
    scratch = "No: the ImageNet weights" if model in PRETRAINED_NAMES else "No: random weights"
    cols = st.columns([2, 1])
    meta = settings()["init_from"]
    init_from = cols[0].selectbox(
        meta.label, options, key="train_init_from", persist_state=KEEP,
        format_func=lambda run_id: scratch if not run_id
        else f"{by_id[run_id]['name']} · {by_id[run_id]['data']} · test "
             f"{pct(by_id[run_id]['test_acc'])}",
        help=f"{meta.help} Completed runs of this same network.")
    if init_from:
        cols[0].caption(what_carries_over(source_classes(init_from), dataset.classes))
    elif not sources:
        cols[0].caption("No completed run of this network yet to start from.")
    state_default("train_freeze_epochs", default_of("freeze_epochs"))
    if not can_freeze(model, init_from or None, st.session_state.get("train_weights")):
        st.session_state["train_freeze_epochs"] = 0  # only a trained backbone is worth freezing
        return
    setting_widget(cols[1], "freeze_epochs",
                   help="Train only the new head for this many epochs, then unfreeze and "
                        "fine-tune everything: the head's random start cannot wreck the trained "
                        "features. 1–2 is typical; 0 fine-tunes everything from the start.")


def on_optimizer_change() -> None:
    st.session_state["train_lr"] = DEFAULT_LR[st.session_state["train_optimizer"]]


def main_settings(dataset: Dataset) -> None:
    state_default("train_optimizer", default_of("optimizer"))
    state_default("train_auto_batch", False)
    state_default("train_lr", DEFAULT_LR[st.session_state["train_optimizer"]])
    state_default("train_image_size", 0)
    own = default_image_size(dataset)
    cols = st.columns(3)
    setting_widget(cols[0], "epochs")
    setting_widget(cols[1], "batch_size", disabled=st.session_state["train_auto_batch"])
    cols[1].checkbox("Auto: the largest that fits the GPU", key="train_auto_batch",
                     persist_state=KEEP, help=settings()["batch_size"].help)
    sizes = sorted({*IMAGE_SIZES, st.session_state["train_image_size"]})  # a clone's own size too
    cols[2].selectbox(settings()["image_size"].label, sizes, key="train_image_size",
                      persist_state=KEEP, help=settings()["image_size"].help,
                      format_func=lambda s: f"dataset's own ({own} px)" if s == 0 else f"{s} px")
    cols = st.columns(3)
    setting_widget(cols[0], "optimizer", on_change=on_optimizer_change)
    lr = settings()["lr"]
    cols[1].number_input(lr.label, min_value=MIN_LR, max_value=lr.high, format="%g", step=1e-4,
                         key="train_lr", persist_state=KEEP, help=lr.help)
    cols[1].button("Suggest", key="train_lr_suggest", icon=":material/auto_fix_high:",
                   on_click=suggest_lr,
                   help=f"Run a short LR range test (at most {AUTO_LR_SECONDS:.0f} s) "
                        "on this model and data and fill in its suggestion.")
    note = st.session_state.pop("lr_suggest_note", None)
    if note:
        (cols[1].caption if note[0] == "ok" else cols[1].error)(note[1])
    setting_widget(cols[2], "schedule")


FORM_CONFIG = "train_form_config"  # the config the form showed last (the Suggest button's)


def suggest_lr() -> None:
    """The Suggest button's callback: the range test on the config the form showed; its
    suggestion, to two significant digits, fills the learning-rate field."""
    config = st.session_state.get(FORM_CONFIG)
    if config is None:
        return
    try:
        found = lr_find(config, budget_seconds=AUTO_LR_SECONDS)
    except USER_ERRORS as error:
        st.session_state["lr_suggest_note"] = ("error", f"Could not suggest a rate: "
                                                        f"{plain(error)}")
        return
    st.session_state["lr_find_result"] = found  # the range test's chart shows it
    if not found["suggestion"]:
        st.session_state["lr_suggest_note"] = ("error", "The range test took too few steps to "
                                                        "suggest a rate; run it below.")
        return
    st.session_state["train_lr"] = two_digits(found["suggestion"])
    st.session_state["lr_suggest_note"] = (
        "ok", f"Suggested by a {len(found['lrs'])}-step range test ({found['seconds']:.0f} s).")


def more_settings() -> None:
    state_default("train_ema", False)
    state_default("train_ema_decay", DEFAULT_EMA_DECAY)
    state_default("train_name", "")
    # keyed: it stays open while its widgets change (an unkeyed one re-created after a
    # clone or recipe notice went away folded shut on the first change inside it)
    with st.expander("More settings: regularisation, augmentation, device", key="train_more"):
        for group in MORE:
            settings_row(group_settings(group, exclude=OWN_WIDGETS))
        cols = st.columns(3)
        cols[0].checkbox("EMA of the weights", key="train_ema", persist_state=KEEP,
                         help=settings()["ema_decay"].help)
        setting_widget(cols[1], "ema_decay", disabled=not st.session_state["train_ema"])
        gpus_setting()
        st.text_input(settings()["name"].label, key="train_name", max_chars=100,
                      persist_state=KEEP)


def gpus_setting() -> None:
    """"GPUs: N", offered only where several are visible: the worker then trains the run
    data-parallel through torchrun."""
    visible = visible_gpus()
    if visible < 2:
        st.session_state["train_gpus"] = 1  # e.g. a clone of a run from a bigger machine
        return
    state_default("train_gpus", 1)
    st.session_state["train_gpus"] = min(max(int(st.session_state["train_gpus"]), 1), visible)
    meta = settings()["gpus"]
    st.number_input(meta.label, 1, visible, key="train_gpus", persist_state=KEEP,
                    help=meta.help)


def form_config(data: str, model: str, spec: dict | None) -> TrainConfig:
    """The TrainConfig the form describes right now."""
    state = st.session_state
    values = {field.name: state[f"train_{field.name}"] for field in dataclasses.fields(TrainConfig)
              if f"train_{field.name}" in state and field.name not in (*OWN_WIDGETS, "lr")}
    values["lr"] = state.get("train_lr")
    values["batch_size"] = AUTO_BATCH if state.get("train_auto_batch") else \
        state.get("train_batch_size", default_of("batch_size"))
    values["ema_decay"] = state.get("train_ema_decay") if state.get("train_ema") else None
    values["init_from"] = state.get("train_init_from") or None  # FROM_SCRATCH → None
    values["freeze_epochs"] = state.get("train_freeze_epochs", 0)
    values["gpus"] = state.get("train_gpus", 1)
    return TrainConfig(
        **values, data=data, model=model, image_size=state.get("train_image_size") or None,
        name=(state.get("train_name") or "").strip() or None, recipe=state.get("train_recipe"),
        extra={"spec": spec} if spec else {})
