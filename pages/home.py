"""Home: what CNN Studio does, the workspace at a glance, and the next step to take."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import streamlit as st

from core.data.dataset import list_datasets
from core.runs import queue
from core.workspace import home
from pages.ui.common import (
    ICONS,
    MISSING,
    PAGES,
    active_runs,
    device_label,
    pct,
    plain,
    store,
)


def workspace_status(dataset_count: int, runs: list[dict]) -> None:
    done = [run for run in runs if run["status"] == "completed"]
    active = active_runs(runs)
    cols = st.columns(4)
    cols[0].metric("Datasets", dataset_count)
    cols[1].metric("Runs", len(runs), help=f"{len(done)} completed")
    cols[2].metric("Active jobs", len(active),
                   help="worker running" if queue.worker_alive() else "no worker running")
    cols[3].metric("Device", device_label())
    st.caption(f"Workspace folder: {plain(home())}")


def next_step(dataset_count: int, runs: list[dict]) -> None:
    st.subheader("Next step")
    done = [run for run in runs if run["status"] == "completed"]
    if dataset_count == 0:
        st.info("Start by adding images: upload a zip or a folder with one sub-folder per class, "
                "or pick a built-in dataset.")
        st.page_link(PAGES["datasets"], label="Add a dataset", icon=ICONS["datasets"])
    elif not runs:
        st.info("You have data. Pick a model and train it; you can watch it learn live.")
        st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
    elif active_runs(runs):
        st.info("A run is training. Watch its loss and accuracy as they come in.")
        st.page_link(PAGES["runs"], label="Watch the training", icon=ICONS["runs"])
    else:
        st.page_link(PAGES["runs"], label="Look at your runs", icon=ICONS["runs"])
        if len(done) >= 2:
            st.page_link(PAGES["compare"], label="Compare runs side by side", icon=ICONS["compare"])
        if done:
            st.page_link(PAGES["classify"], label="Classify new images", icon=ICONS["classify"])
            st.page_link(PAGES["mistakes"], label="See which images a model gets wrong",
                         icon=ICONS["mistakes"])
        st.page_link(PAGES["train"], label="Train another model", icon=ICONS["train"])
        st.page_link(PAGES["sweeps"], label="Sweep several architectures at once",
                     icon=ICONS["sweeps"])


def recent_runs(runs: list[dict]) -> None:
    if not runs:
        return
    st.subheader("Recent runs")
    st.dataframe([{"run": run["name"], "status": run["status"], "model": run["model"],
                   "data": run["data"], "best val acc": pct(run["best_val_acc"]),
                   "test acc": pct(run["test_acc"])} for run in runs[:5]],
                 hide_index=True, placeholder=MISSING)


def how_it_works() -> None:
    with st.expander("How it works", expanded=False):
        st.markdown(
            "1. **Datasets** — upload a zip or folder laid out as `class_name/image.jpg`, or "
            "build the classes one by one. Every file is checked; what is dropped is listed "
            "with the reason. A train / validation / test split is fixed at import.\n"
            "2. **Train** — choose a preset CNN, any timm architecture, the pretrained "
            "EfficientNet-Lite0 or Lite2, or design your own layer by layer. Training runs in a "
            "background worker, so closing the tab loses nothing.\n"
            "3. **Runs** — loss, accuracy, learning rate and speed update about once a second.\n"
            "4. **Compare** — overlay the curves of several runs and their final scores.\n"
            "5. **Classify** — drop in new images and see what a trained model says.")


st.title("CNN Studio")
st.markdown("Train convolutional image classifiers on your own pictures, watch them learn, "
            "compare them, and use them — all from the browser.")
db = store()
all_runs = queue.keep_queue_moving(db)
dataset_total = len(list_datasets())
workspace_status(dataset_total, all_runs)
next_step(dataset_total, all_runs)
recent_runs(all_runs)
how_it_works()
