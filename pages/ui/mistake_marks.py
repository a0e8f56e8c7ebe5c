"""Error analysis helpers: an image gallery where each image can be marked (remove, or relabel),
and saving the marks as a new version of the dataset (the original stays as it is)."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st

from core.analysis.error_analysis import save_dataset_version
from core.data.catalog import free_version_name
from core.data.dataset import Dataset
from pages.ui.common import MISSING, PAGES, plain, switch_to, user_errors

COLUMNS = 6
KEEP, REMOVE, RELABEL = "keep", "remove", "relabel as "
MARK_KEYS = "mistake_mark_keys"  # session: dataset → the keys of its mark boxes


def marks(dataset: str) -> dict[int, str]:
    """item index → "remove" or the class to relabel it as, for one dataset (this session)."""
    return st.session_state.setdefault("mistake_marks", {}).setdefault(dataset, {})


def set_mark(dataset: str, index: int, key: str) -> None:
    choice = st.session_state[key]
    own = marks(dataset)
    if choice == KEEP:
        own.pop(index, None)
    else:
        own[index] = REMOVE if choice == REMOVE else choice.removeprefix(RELABEL)


def action_options(classes: list[str], true: str, predicted: str) -> list[str]:
    """keep, remove, then relabel choices with the model's guess first."""
    others = [predicted] + [c for c in classes if c not in (true, predicted)]
    return [KEEP, REMOVE, *(RELABEL + c for c in others if c != true)]


def short_option(option: str) -> str:
    """"→ cat" for "relabel as cat": the long form was cut off in the narrow gallery columns."""
    return "→ " + option.removeprefix(RELABEL) if option.startswith(RELABEL) else option


def current_option(mark: str | None) -> str:
    if mark is None:
        return KEEP
    return REMOVE if mark == REMOVE else RELABEL + mark


def gallery(rows: pd.DataFrame, dataset: Dataset, prefix: str) -> None:
    """The images with their true and predicted class, probabilities and loss, and a mark."""
    if rows.empty:
        st.info("No validation images here.")
        return
    own = marks(dataset.name)
    for start in range(0, len(rows), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), rows.iloc[start:start + COLUMNS]
                               .itertuples(), strict=False):
            index = int(row.index)
            column.image(str(dataset.folder / row.file), width=96)
            column.caption(f"true **{plain(row.true)}** → predicted **{plain(row.predicted)}**  \n"
                           f"p(predicted) {row.prob_predicted:.0%} · p(true) {row.prob_true:.0%}"
                           f" · loss {row.loss:.2f}")
            options = action_options(dataset.classes, row.true, row.predicted)
            key = mark_key(prefix, dataset.name, index)
            column.selectbox("Mark", options, key=key, label_visibility="collapsed",
                             format_func=short_option, help="→ X: relabel as class X",
                             index=options.index(current_option(own.get(index)))
                             if current_option(own.get(index)) in options else 0,
                             on_change=set_mark, args=(dataset.name, index, key))


def save_panel(dataset: Dataset, run: dict) -> None:
    """The marks so far, and the button that writes them as a new dataset."""
    st.subheader("Save a cleaned version")
    own = marks(dataset.name)
    source, saved = st.session_state.get("mistakes_saved") or (None, None)
    if source == dataset.name:
        st.success(f"Saved dataset {plain(saved)}. The original {plain(dataset.name)} is "
                   "unchanged; train on the new version to see whether the fixes help.",
                   icon=":material/check_circle:")
        if st.button(f"Train on {saved} with this run's settings", key="mistakes_retrain",
                     icon=":material/model_training:"):
            st.session_state["clone_config"] = {**run["config"], "data": saved, "name": None}
            st.session_state.pop("mistakes_saved", None)
            switch_to(PAGES["train"])
    if not own:
        st.caption("Mark images above as *remove* or *relabel as …*; the marks collect here.")
        return
    removed = sorted(i for i, mark in own.items() if mark == REMOVE)
    relabelled = {i: mark for i, mark in own.items() if mark != REMOVE}
    st.dataframe([{"original file": dataset.items[i].source or dataset.items[i].file,  # as
                   # uploaded, so the source folder can be fixed too; the internal id otherwise
                   "class": dataset.classes[dataset.items[i].label],
                   "split": dataset.items[i].split, "action": current_option(mark)}
                  for i, mark in own.items()],
                 hide_index=True, placeholder=MISSING, key="mistakes_marked")
    cols = st.columns([2, 2, 1])
    name = cols[0].text_input("Name of the new version", value=free_version_name(dataset.name),
                              key=f"mistakes_version_{dataset.name}", max_chars=64)
    label = f"Save new version ({len(removed)} removed, {len(relabelled)} relabelled)"
    cols[1].markdown("&nbsp;")
    if cols[1].button(label, type="primary", key="mistakes_save", icon=":material/save:"):
        with user_errors("save the new version"), st.spinner("Writing the new dataset…"):
            version = save_dataset_version(dataset.name, name.strip(), set(removed), relabelled)
            st.session_state["mistakes_saved"] = (dataset.name, version.name)
            st.session_state.pop(f"mistakes_version_{dataset.name}", None)
            clear_marks(dataset.name)
    cols[2].markdown("&nbsp;")
    if cols[2].button("Clear marks", key="mistakes_clear"):
        clear_marks(dataset.name)


def mark_key_for(prefix: str, dataset: str, index: int) -> str:
    """The session key of one image's mark box: the dataset by a hash of its name, so no two
    datasets' keys can look alike ("b" and "a_b" once did)."""
    return f"mark_{prefix}_{index}_{hashlib.sha256(dataset.encode()).hexdigest()[:12]}"


def mark_key(prefix: str, dataset: str, index: int) -> str:
    """mark_key_for, remembered per dataset, so clearing one dataset's marks resets exactly its
    boxes."""
    key = mark_key_for(prefix, dataset, index)
    st.session_state.setdefault(MARK_KEYS, {}).setdefault(dataset, set()).add(key)
    return key


def clear_marks(dataset: str) -> None:
    """Forget the marks and reset the mark boxes of the gallery to "keep"."""
    st.session_state["mistake_marks"].pop(dataset, None)
    for key in st.session_state.get(MARK_KEYS, {}).pop(dataset, set()):
        st.session_state.pop(key, None)
    st.rerun()
