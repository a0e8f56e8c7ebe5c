"""How an upload was read (core.data.layouts), in words: the layout line and the import's notes
(a split drawn from train, classes missing from a split), for the Datasets page's overview and
its import report."""

from __future__ import annotations

import streamlit as st

from pages.ui.common import plain

LAYOUT_WORDS = {
    "class-folders": "class folders (class_name/image.jpg)",
    "split-folders": "split folders (train/, val/, test/ with class folders), splits kept as "
                     "given",
    "file-names": "labels from file names (label.N.jpg)",
    "csv": "labels from a CSV file in the upload",
}


def layout_text(kind: str) -> str:
    """"Layout: …" for a dataset's `layout`; "" for one made without an upload's layout (a
    built-in dataset, a version)."""
    words = LAYOUT_WORDS.get(kind)
    return f"Layout: {words}" if words else ""


def layout_facts(kind: str, notes: list[str]) -> None:
    """The layout line, then each note the import left (a drawn split, missing classes)."""
    line = layout_text(kind)
    if line:
        st.caption(f"{plain(line)}.")
    for note in notes:
        if not is_duplicate_note(note):  # the duplicates section says those in full
            st.caption(f"{plain(note)}")


def is_duplicate_note(note: str) -> bool:
    return "duplicate" in note and ("group(s)" in note or "dedupe" in note)
