"""The Datasets page's "Add a dataset" panel: zip, folder, class by class, built-in."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from core.data import catalog
from core.data.dataset import list_datasets
from core.runs.imports import submit_demo, submit_entries, submit_zip
from core.workspace import NAME_RULE, safe_name
from pages.ui.common import IMAGE_TYPES, plain, user_errors
from pages.ui.import_jobs import import_notices

NAME_HELP = f"The dataset's name in the workspace: {NAME_RULE}."
PATTERN_HELP = ("Optional. A regular expression whose first group is the label in each file "
                "name, for names the automatic reading misses: `^([a-z]+)_\\d+` reads `cat` "
                "from `cat_12.jpg`. Empty: class folders, train/val/test folders, a labels.csv "
                "or names like cat.12.jpg are read by themselves.")


def split_settings(key: str) -> tuple[float, float]:
    with st.expander("Validation and test split"):
        cols = st.columns(2)
        val = cols[0].slider("Validation share", 0.0, 0.4, 0.1, 0.05, key=f"{key}_val")
        test = cols[1].slider("Test share", 0.0, 0.4, 0.1, 0.05, key=f"{key}_test")
    return val, test


def queue_import(submit: Callable[[], str]) -> None:
    """Queue an import for the background worker; its notice above then shows its progress.
    It goes on when the user leaves the page, reloads it or the server restarts."""
    with user_errors("import the dataset"):
        submit()
        st.rerun()


def zip_tab() -> None:
    upload = st.file_uploader("A zip of class folders (class_name/image.jpg), of train/, val/ "
                              "and test/ folders, of files named label.N.jpg, or with a "
                              "labels.csv", type=["zip"],
                              key="zip_upload")
    name = st.text_input("Dataset name", help=NAME_HELP, key="zip_name",
                         placeholder=safe_name(upload.name) if upload else "my-dataset")
    pattern = st.text_input("Label pattern (regex)", key="zip_label_pattern",
                            placeholder=r"^([a-z]+)_\d+", help=PATTERN_HELP)
    val, test = split_settings("zip")
    if st.button("Import zip", type="primary", disabled=upload is None, key="zip_go"):
        chosen = name.strip() or safe_name(upload.name)
        upload.seek(0)
        queue_import(lambda: submit_zip(upload, chosen, val=val, test=test,
                                        label_pattern=pattern.strip() or None))


def folder_tab() -> None:
    files = st.file_uploader("A folder with one sub-folder per class", type=IMAGE_TYPES,
                             accept_multiple_files="directory", key="folder_upload")
    name = st.text_input("Dataset name", help=NAME_HELP, key="folder_name",
                         placeholder="my-dataset")
    val, test = split_settings("folder")
    if st.button("Import folder", type="primary", disabled=not files, key="folder_go"):
        entries = [(file.name, file.getvalue()) for file in files]
        if not any("/" in entry[0] for entry in entries):
            st.error("The browser sent the files without their folder names, so the classes "
                     "are unknown. Upload a zip of the folder instead, or use Class by class.")
            return
        chosen = name.strip() or "my-dataset"
        queue_import(lambda: submit_entries(entries, chosen, val=val, test=test))


def class_by_class_tab() -> None:
    st.caption("Name a class and drop its images; add as many classes as you need.")
    ids: list[int] = st.session_state.setdefault("tm_classes", [0, 1])
    for class_id in list(ids):
        with st.container(border=True, key=f"tm_class_{class_id}"):
            cols = st.columns([3, 1])
            cols[0].text_input("Class name", key=f"tm_name_{class_id}",
                               placeholder=f"class {ids.index(class_id) + 1}")
            if len(ids) > 2 and cols[1].button("Remove", key=f"tm_remove_{class_id}"):
                ids.remove(class_id)
                st.rerun()
            st.file_uploader("Images of this class", type=IMAGE_TYPES,
                             accept_multiple_files=True, key=f"tm_files_{class_id}")
            webcam_shots(class_id)
    if st.button("Add a class", key="tm_add", icon=":material/add:"):
        ids.append(max(ids) + 1)
        st.rerun()
    name = st.text_input("Dataset name", help=NAME_HELP, key="tm_dataset_name",
                         placeholder="my-classes")
    val, test = split_settings("tm")
    if st.button("Create dataset", type="primary", key="tm_go"):
        entries = class_entries(ids)
        if entries is not None:
            chosen = name.strip() or "my-classes"
            queue_import(lambda: submit_entries(entries, chosen, val=val, test=test))


def keep_shot(class_id: int) -> None:
    """Each new webcam picture joins the class (the camera widget holds only the last one)."""
    shot = st.session_state.get(f"tm_camera_{class_id}")
    if shot is not None:
        st.session_state.setdefault(f"tm_shots_{class_id}", []).append(shot.getvalue())


def webcam_shots(class_id: int) -> None:
    """Pictures from the webcam, as Teachable Machine takes them: one per click."""
    shots = st.session_state.get(f"tm_shots_{class_id}") or []
    if not st.toggle("Take pictures with the webcam", key=f"tm_camera_on_{class_id}"):
        if shots:
            st.caption(f"{len(shots)} webcam picture(s) in this class.")
        return
    st.camera_input("Take a picture (each one joins this class)", key=f"tm_camera_{class_id}",
                    on_change=keep_shot, args=(class_id,))
    cols = st.columns([3, 1])
    cols[0].caption(f"{len(shots)} webcam picture(s) in this class.")
    if shots and cols[1].button("Clear them", key=f"tm_shots_clear_{class_id}"):
        st.session_state[f"tm_shots_{class_id}"] = []
        st.rerun()


def class_entries(ids: list[int]) -> list[tuple[str, bytes]] | None:
    """("class/file", bytes) pairs from the class-by-class form, or None after an st.error."""
    entries, seen = [], set()
    for class_id in ids:
        label = st.session_state.get(f"tm_name_{class_id}", "").strip()
        files = st.session_state.get(f"tm_files_{class_id}") or []
        shots = st.session_state.get(f"tm_shots_{class_id}") or []
        if not files and not shots:
            continue
        if not label or "/" in label or "\\" in label or label in (".", ".."):
            st.error("Give every class that has images a name (without / or \\).")
            return None
        if label in seen:
            st.error(f"Two classes are both named {plain(repr(label))}; give each class its own "
                     "name.")
            return None
        seen.add(label)
        entries += [(f"{label}/{file.name}", file.getvalue()) for file in files]
        entries += [(f"{label}/webcam-{index:03d}.jpg", shot) for index, shot in enumerate(shots)]
    if len(seen) < 2:
        st.error("Add images to at least two classes: a classifier needs two to tell apart.")
        return None
    return entries


def builtin_tab() -> None:
    existing = set(list_datasets())
    for kind, description in catalog.demo_kinds().items():
        cols = st.columns([4, 1])
        cols[0].markdown(f"**{kind}** — {description}")
        added = kind in existing
        if cols[1].button("Added" if added else "Add", key=f"demo_{kind}", disabled=added,
                          width="stretch"):
            queue_import(lambda kind=kind: submit_demo(kind, kind))


def add_dataset_panel() -> None:
    """The report slot is always drawn (empty or not) and the tabs carry a key: when the
    one-shot report goes away, nothing below it changes identity. Without both, the rerun
    after an import re-created the tabs, and the browser re-mounted the zip uploader mid-upload
    (a large file's upload finished into a new, empty widget)."""
    st.subheader("Add a dataset")
    with st.container(key="import_report_slot"):
        import_notices()
    tabs = st.tabs([":material/archive: Zip file", ":material/folder: Folder",
                    ":material/category: Class by class", ":material/inventory_2: Built-in"],
                   key="dataset_add_tabs")
    with tabs[0]:
        zip_tab()
    with tabs[1]:
        folder_tab()
    with tabs[2]:
        class_by_class_tab()
    with tabs[3]:
        builtin_tab()
