"""The Datasets page's duplicates section: the exact and near copies found at import
(core.data.duplicates), a gallery per group with each copy's source name and split, the leaks
the split avoided, and one click to save a version without the extra copies (the same
`core.analysis.dedupe.dedupe` as `data dedupe NAME --keep first`)."""

from __future__ import annotations

import streamlit as st

from core.analysis.dedupe import dedupe
from core.data.dataset import Dataset
from pages.ui.common import plain, store, user_errors
from pages.ui.dataset_view import thumbnail

GROUPS_PER_PAGE = 10
SAVED = "dedupe_saved"  # session key: the message of the last version saved here


def duplicates_panel(dataset: Dataset) -> None:
    saved_notice(dataset.name)
    groups = dataset.duplicates
    if not groups:
        st.caption("No duplicate images were found at import.")
        return
    exact = sum(group["kind"] == "exact" for group in groups)
    extra = sum(len(group["items"]) - 1 for group in groups)
    st.markdown("**Duplicates**")
    cols = st.columns(4)
    cols[0].metric("Exact groups", exact, help="The same decoded pixels.")
    cols[1].metric("Near groups", len(groups) - exact,
                   help="Re-encoded, resized, slightly brightened or cropped copies.")
    cols[2].metric("Extra copies", extra)
    avoided = leaks_avoided(dataset.leaks)
    if avoided is not None:
        cols[3].metric("Leaks the split avoided", avoided,
                       help="Groups a split ignoring duplicates would have spread over train, "
                            "val and test (a copy of a training image in test inflates the "
                            "score); each group was kept in one split instead.")
    if dataset.leaks.get("in_split"):
        st.warning(f"{dataset.leaks['in_split']} group(s) still span splits (the upload's own "
                   "splits, or a class with too few distinct pictures): the score on those "
                   "copies is inflated. The version without the extra copies has none.",
                   icon=":material/content_copy:")
    dedupe_button(dataset, extra)
    group_gallery(dataset, groups)


def leaks_avoided(leaks: dict) -> int | None:
    """Groups the split kept together that a split ignoring them would have spread; None when
    the import recorded no leak counts."""
    if "without_grouping" not in leaks:
        return None
    return max(0, leaks["without_grouping"] - leaks.get("in_split", 0))


def group_gallery(dataset: Dataset, groups: list[dict]) -> None:
    pages = (len(groups) - 1) // GROUPS_PER_PAGE + 1
    page = 1
    if pages > 1:
        page = st.number_input(f"Page of groups (of {pages})", 1, pages, 1,
                               key="duplicates_page")
    start = (page - 1) * GROUPS_PER_PAGE
    for number, group in enumerate(groups[start:start + GROUPS_PER_PAGE], start + 1):
        items = [dataset.items[index] for index in group["items"]]
        label = dataset.classes[items[0].label]
        st.caption(f"Group {number}: {group['kind']}, {len(items)} copies, class "
                   f"{plain(label)}")
        st.image([thumbnail(str(dataset.folder / item.file)) for item in items],
                 caption=[f"{item.source or item.file} · {item.split}" for item in items])


def dedupe_button(dataset: Dataset, extra: int) -> None:
    if st.button("Save a version without the extra copies", key="dedupe_save",
                 icon=":material/filter_none:",
                 help=f"Writes a new dataset with the first copy of each group ({extra} fewer "
                      f"images); {dataset.name} itself is left as it is."):
        with user_errors("save the version without duplicates"):
            version, removed = dedupe(dataset.name, keep="first", store=store())
            st.session_state[SAVED] = (dataset.name, version.name, len(removed),
                                       len(version.items))
            st.rerun()  # the dataset list above now holds the new version


def saved_notice(shown: str) -> None:
    """What the last click saved, under the dataset it was saved from."""
    saved = st.session_state.get(SAVED)
    if not saved or saved[0] != shown:
        return
    original, name, removed, kept = saved
    cols = st.columns([5, 1], vertical_alignment="center")
    copies = "copy" if removed == 1 else "copies"
    cols[0].success(f"Saved {plain(name)}: {kept} images, without {removed} extra {copies}. "
                    f"{plain(original)} is unchanged.", icon=":material/check_circle:")
    cols[1].button(f"Open {plain(name)}", key="dedupe_open", on_click=open_version,
                   args=(name,))


def open_version(name: str) -> None:
    st.session_state["dataset_pick"] = name
    st.session_state.pop(SAVED, None)
