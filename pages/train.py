"""Train: pick a dataset and a model, set the hyperparameters, preview the schedule, start."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import streamlit as st

from core.config import TrainConfig
from core.data.cache import default_image_size
from core.data.dataset import list_datasets
from core.runs import queue
from core.training.batch_size import NO_PROBE_BATCH
from core.training.recipes import mark_recipe_changes
from core.training.schedule import lr_curve, steps_per_epoch
from pages.ui.charts import lr_find_figure, lr_schedule_figure
from pages.ui.common import ICONS, PAGES, go_to_run, store, user_errors
from pages.ui.data_fit import flip_note, imbalance_note, resize_note, shift_note
from pages.ui.dataset_view import current_dataset
from pages.ui.estimate import run_estimate
from pages.ui.train_form import (
    FORM_CONFIG,
    KEEP,
    apply_clone,
    form_config,
    main_settings,
    model_picker,
    more_settings,
    recipe_picker,
    state_default,
    transfer_settings,
)


def schedule_preview(config: TrainConfig, train_images: int) -> None:
    # an auto batch is found when the run starts; any guess draws the same curve in epochs
    points = lr_curve(config, steps_per_epoch(train_images, config.batch_size or NO_PROBE_BATCH))
    st.plotly_chart(lr_schedule_figure(points, config.schedule), key="lr_schedule_chart")


def use_suggestion(value: float) -> None:
    from core.training.lr_find import two_digits

    st.session_state["train_lr"] = two_digits(value)


def lr_range_test(config: TrainConfig) -> None:
    """The LR range test (core.training.lr_find): a short run with a rising learning rate."""
    st.markdown("**LR range test** — trains briefly while raising the learning rate; pick a "
                "rate a little below where the loss falls fastest.")
    if st.button("Run the LR range test", key="lr_find_go"):
        from core.training.lr_find import lr_find

        with user_errors("run the LR range test"), st.spinner("Running the LR range test…"):
            st.session_state["lr_find_result"] = lr_find(config)
    result = st.session_state.get("lr_find_result")
    if result:
        st.plotly_chart(lr_find_figure(result["lrs"], result["losses"], result.get("suggestion")),
                        key="lr_find_chart")
        if result.get("suggestion"):
            st.button(f"Use the suggested rate ({result['suggestion']:.2g})", key="lr_find_use",
                      on_click=use_suggestion, args=(result["suggestion"],))


def start(config: TrainConfig) -> None:
    with user_errors("start the run"):
        run_id = queue.submit(config, store())
        st.session_state.pop("lr_find_result", None)
        go_to_run(run_id)


def train_page(names: list[str]) -> None:
    state_default("train_data", names[0])
    if st.session_state["train_data"] not in names:
        st.session_state["train_data"] = names[0]
    data = st.selectbox("Dataset", names, key="train_data", persist_state=KEEP)
    dataset = current_dataset(data)
    train_images = len(dataset.indices("train"))
    splits = dataset.split_counts()
    st.caption(f"{len(dataset.classes)} classes · {train_images:,} training images · "
               f"{splits['val']:,} validation · {splits['test']:,} test")
    recipe_picker(data)
    st.subheader("Model")
    image_size = st.session_state.get("train_image_size") or default_image_size(dataset)
    model, spec = model_picker(dataset, image_size)
    transfer_settings(model, dataset, store().list_runs())
    st.subheader("Hyperparameters")
    main_settings(dataset)
    more_settings()
    config = form_config(data, model, spec)
    flip_note(dataset, config.flip)
    shift_note(dataset, config.pad_crop, config.image_size or default_image_size(dataset))
    resize_note(dataset, config.resize)
    if config.balance == "none":
        imbalance_note(dataset)  # with "Class balance" under More settings as the remedy
    st.session_state[FORM_CONFIG] = config  # what the Suggest button tests on its next click
    left, right = st.columns(2)
    with left:
        schedule_preview(config, train_images)
    with right:
        lr_range_test(config)
    ready = spec is not None or model != "custom-cnn"
    if ready:
        run_estimate(config, dataset)
    if st.button("Start training", type="primary", icon=":material/play_arrow:",
                 disabled=not ready, key="train_start"):
        start(mark_recipe_changes(config, dataset))  # "cpu-quick (modified)" once changed


st.title("Train")
with st.container(key="train_clone_notice_slot"):  # always drawn, so nothing below shifts
    if "clone_config" in st.session_state:
        apply_clone(st.session_state.pop("clone_config"))
        st.info("The form holds a copy of the run's settings; change what you like and start.")
dataset_names = list_datasets()
if not dataset_names:
    st.info("There is no dataset to train on yet. Add one first.")
    st.page_link(PAGES["datasets"], label="Add a dataset", icon=ICONS["datasets"])
else:
    with user_errors("prepare the form"):
        train_page(dataset_names)
