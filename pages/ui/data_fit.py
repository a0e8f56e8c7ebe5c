"""What the data says about training on it: the flip decision (core.data.mirror), the resize
mode and class imbalance (core.data.balance), shown on the Datasets and Train pages with how to
override them, and a finished run's balanced accuracy when its classes were imbalanced."""

from __future__ import annotations

import streamlit as st

from core.data.balance import imbalance
from core.data.cache import dataset_resize, default_image_size
from core.data.dataset import Dataset
from core.data.mirror import FlipDecision, dataset_flip_decision
from core.data.shift import decide_shift
from pages.ui.common import MISSING, plain

OVERRIDE = ("Override it on the Train page: More settings → Random horizontal flip "
            "(auto, on or off).")


@st.cache_data(max_entries=32, show_spinner="Testing mirror symmetry…")
def flip_decision(name: str, content_hash: str) -> dict:
    from core.data.dataset import load_dataset

    return dataset_flip_decision(load_dataset(name)).to_dict()  # content_hash: the cache key


def decision_of(dataset: Dataset) -> FlipDecision:
    return FlipDecision(**flip_decision(dataset.name, dataset.content_hash))


def resize_note(dataset: Dataset, setting: str = "auto") -> None:
    """One line: the resize mode a run on `dataset` gets with `setting`, and why."""
    mode, reason = dataset_resize(dataset, setting)
    prefix = "Resize (auto): " if setting == "auto" else ""
    st.caption(f"{prefix}{plain(reason)}.")


def flip_note(dataset: Dataset, setting: str = "auto") -> None:
    """One line: the flip a run on `dataset` gets with `setting`, and why."""
    decision = decision_of(dataset)
    if setting == "auto":
        st.caption(f"Flip (auto): {plain(decision.reason)}. {OVERRIDE}")
    elif (setting == "on") != decision.flip:
        st.caption(f"Flip set {setting} by hand; the data test says {plain(decision.reason)}.")


def shift_note(dataset: Dataset, setting: int | None, image_size: int) -> None:
    """One line: the random shift a run on `dataset` gets with `setting`, and why."""
    decision = decide_shift(decision_of(dataset), len(dataset.classes), image_size)
    if setting is None:
        st.caption(f"Shift (auto): {plain(decision.reason)}. Override it with Random shift "
                   "(pixels) under More settings.")
    elif setting != decision.pad:
        st.caption(f"Shift set to {setting} px by hand; the data test says "
                   f"{plain(decision.reason)}.")


def data_fit_panel(dataset: Dataset) -> FlipDecision:
    """The Datasets page's section: what training will choose from this data."""
    st.markdown("**What training chooses from this data**")
    decision = decision_of(dataset)
    st.caption(f"{plain(decision.reason)}. {OVERRIDE}")
    shift = decide_shift(decision, len(dataset.classes), default_image_size(dataset))
    st.caption(f"{plain(shift.reason)}. Override it on the Train page: More settings → Random "
               "shift (pixels).")
    st.caption(f"{plain(dataset_resize(dataset)[1])}. Override it with Resize mode (crop, "
               "squish or pad) on the Train page; predictions and exports use the run's mode.")
    return decision


TRAIN_REMEDY = ("this page offers class weights or a balanced sampler: More settings → Class "
                "balance, weights (a class-weighted loss) or sampler (every class drawn equally "
                "often); judge the run by its balanced accuracy")


def imbalance_note(dataset: Dataset, remedy: str = TRAIN_REMEDY) -> None:
    """A warning when the largest class has over 3× the training images of the smallest,
    with the `remedy` the page offers."""
    found = imbalance(dataset)
    if found:
        largest, smallest = found["largest"], found["smallest"]
        counts = found["counts"]
        st.warning(f"The classes are imbalanced: {code(largest)} has {counts[largest]:,} "
                   f"training images, {code(smallest)} {counts[smallest]:,} "
                   f"({found['ratio']:.1f}×), and a plain loss favours the large classes. "
                   f"{remedy[0].upper()}{remedy[1:]}.", icon=":material/balance:")


def code(name: str) -> str:
    """A class name as inline code (read literally; a backtick in it would end the span)."""
    literal = name.replace("`", "'")
    return f"`{literal}`"


def imbalance_result(summary: dict) -> None:
    """Under a finished run's result: balanced accuracy and per-class recall, when the classes
    were imbalanced (or the run balanced them)."""
    if not (summary.get("imbalance_ratio") or summary.get("balance", "none") != "none"):
        return
    if summary.get("balanced_acc") is None:
        return
    ratio = summary.get("imbalance_ratio")
    st.markdown(f"**Balanced accuracy** (mean per-class recall): {summary['balanced_acc']:.1%} "
                f"· accuracy {summary.get('test_acc') or 0:.1%} · balance "
                f"{plain(summary.get('balance', 'none'))}"
                + (f" · largest class {ratio:.1f}× the smallest" if ratio else ""))
    st.dataframe([{"class": row["class"], "test images": row["support"],
                   "recall": row["accuracy"]} for row in summary.get("per_class") or []],
                 hide_index=True, column_config={"recall": st.column_config.ProgressColumn(
                     "recall", min_value=0.0, max_value=1.0, format="percent")},
                 placeholder=MISSING)
