"""Datasets: add one (zip, folder, class by class, built-in), look at it, delete it."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import streamlit as st

from core.data import catalog
from core.data.cache import default_image_size
from core.data.dataset import list_datasets
from core.data.shift import decide_shift
from pages.ui.common import ICONS, PAGES, confirm_delete, plain, store, user_errors
from pages.ui.data_fit import data_fit_panel
from pages.ui.dataset_add import add_dataset_panel
from pages.ui.dataset_duplicates import duplicates_panel
from pages.ui.dataset_view import (
    augmentation_preview,
    balance,
    current_dataset,
    dropped_report,
    gallery,
    overview,
)


def delete_control(name: str) -> None:
    """Delete, after asking: a two-step button so a slip of the mouse loses nothing."""
    if st.session_state.get("confirm_delete_dataset") != name:
        if st.button("Delete this dataset…", key="dataset_delete", icon=":material/delete:"):
            st.session_state["confirm_delete_dataset"] = name
            st.rerun()
        return
    used = [run for run in store().list_runs() if run["data"] == name]
    confirm_delete("dataset", name,
                   f"Delete dataset {plain(repr(name))} and its images from the workspace? This "
                   f"cannot be undone. {len(used)} run(s) trained on it keep their models, but "
                   "cannot be resumed or cloned without it.", lambda: catalog.remove(name))


def show_dataset(name: str) -> None:
    with user_errors("open the dataset"):
        dataset = current_dataset(name)
        overview(dataset)
        balance(dataset)
        dropped_report(dataset)
        duplicates_panel(dataset)
        st.divider()
        gallery(dataset)
        st.divider()
        decision = data_fit_panel(dataset)
        shift = decide_shift(decision, len(dataset.classes), default_image_size(dataset))
        augmentation_preview(dataset, decision.flip, shift.pad)
        st.divider()
        cols = st.columns([2, 5])
        with cols[0]:
            delete_control(name)
        if cols[1].button(f"Train a model on {plain(name)}", icon=ICONS["train"], type="tertiary",
                          key="dataset_train"):
            st.session_state["train_data"] = name
            st.switch_page(PAGES["train"])


st.title("Datasets")
add_dataset_panel()
st.divider()
st.subheader("Your datasets")
names = list_datasets()
if not names:
    st.info("No datasets yet. Add one above: a zip of class folders is the quickest way, or "
            "try a built-in dataset.")
else:
    if st.session_state.get("dataset_pick") not in names:
        st.session_state["dataset_pick"] = names[0]
    picked = st.selectbox("Dataset", names, key="dataset_pick", persist_state="session")
    show_dataset(picked)
