"""Compare page: what changed between two runs, image by image (core.analysis.paired) — the
images B fixed, broke and both got wrong, and whether the difference is real."""

from __future__ import annotations

import streamlit as st

from core.analysis.paired import compare_runs
from pages.ui.common import pct, plain, user_errors, weights_stamp

GALLERY_MAX = 24  # images shown per kind; the rest are counted
COLUMNS = 6
KINDS = [("fixed", "Fixed (A wrong, B right)"), ("broken", "Broken (A right, B wrong)"),
         ("both_wrong", "Both wrong")]


@st.cache_data(max_entries=32, show_spinner="Comparing image by image…")
def paired(run_a: str, run_b: str, split: str, stamps: tuple[int, int]) -> dict:
    """compare_runs, kept per (runs, split, weights): a retrained run is compared again."""
    return compare_runs(run_a, run_b, split=split)


def compare_two(run_a: str, run_b: str, split: str = "test") -> dict:
    """Raises ValueError with a sentence when the runs cannot be compared image by image."""
    return paired(run_a, run_b, split, (weights_stamp(run_a), weights_stamp(run_b)))


def pick_pair(runs: list[dict]) -> tuple[dict, dict, str]:
    by_id = {run["run_id"]: run for run in runs}
    ids = list(by_id)
    cols = st.columns([2, 2, 1])
    first = cols[0].selectbox("Run A (reference)", ids, key="changes_a",
                              format_func=lambda i: by_id[i]["name"])
    rest = [i for i in ids if i != first]
    second = cols[1].selectbox("Run B", rest, key="changes_b",
                               format_func=lambda i: by_id[i]["name"])
    split = cols[2].segmented_control("Split", ["test", "val"], default="test",
                                      key="changes_split") or "test"
    return by_id[first], by_id[second], split


def what_changed_section(runs: list[dict]) -> None:
    st.subheader("What changed, image by image")
    if len(runs) < 2:
        st.caption("Choose two runs on the same dataset to see which images one fixed and the "
                   "other broke.")
        return
    run_a, run_b, split = pick_pair(runs)
    with user_errors("compare these two runs image by image"):
        result = compare_two(run_a["run_id"], run_b["run_id"], split)
        show_result(result)


def show_result(result: dict) -> None:
    a, b = result["a"], result["b"]
    shown = plain(result["verdict"])
    (st.success if result["better"] else st.info)(shown, icon=":material/balance:")
    cols = st.columns(2)
    for col, side, run in ((cols[0], "A", a), (cols[1], "B", b)):
        low, high = run["ci95"]
        col.metric(f"{side}: {run['name']}", pct(run["accuracy"]),
                   help=f"{run['correct']} of {run['images']} {result['split']} images right; "
                        f"95% confidence interval (Wilson) {pct(low)} to {pct(high)}")
        col.caption(f"95% interval {pct(low)} – {pct(high)}")
    st.caption("p is McNemar's exact test on the images exactly one run gets right: how often "
               "a split this uneven happens by chance when the runs are equally good.")
    tabs = st.tabs([f"{title} · {result['counts'][kind]}" for kind, title in KINDS])
    for tab, (kind, _) in zip(tabs, KINDS, strict=True):
        with tab:
            gallery(result[kind], a["name"], b["name"])


def gallery(images: list[dict], name_a: str, name_b: str) -> None:
    if not images:
        st.caption("None.")
        return
    if len(images) > GALLERY_MAX:
        st.caption(f"The first {GALLERY_MAX} of {len(images)}.")
    cols = st.columns(COLUMNS)
    for number, image in enumerate(images[:GALLERY_MAX]):
        caption = (f"true: {image['label']} · A: {image['a']} · B: {image['b']}")
        with cols[number % COLUMNS]:
            if image["file"]:
                st.image(image["file"], caption=caption, width="stretch")
            else:
                st.caption(f"image {image['index']} (dataset gone): {caption}")
