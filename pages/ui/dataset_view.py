"""The Datasets page's view of one dataset: numbers, balance, gallery, augmentation preview."""

from __future__ import annotations

import random

import numpy as np
import streamlit as st
from PIL import Image

from core.data.cache import dataset_resize, default_image_size
from core.data.dataset import MANIFEST, SPLITS, Dataset, dataset_folder, load_dataset
from core.data.loader import Augment, augment_images
from core.data.transforms import fit_image
from pages.ui.charts import balance_figure
from pages.ui.common import MISSING, plain
from pages.ui.data_fit import imbalance_note
from pages.ui.dataset_layout import layout_facts

GALLERY_PER_CLASS = 8
GALLERY_CLASSES = 12  # more classes than this: the person picks which to show
PREVIEW_IMAGES = 8
DATASETS_REMEDY = ("the Train page offers class weights or a balanced sampler (More settings → "
                   "Class balance); judge such a run by its balanced accuracy")
THUMB = 88  # pixels a thumbnail is drawn at (small images are enlarged without blurring)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_dataset(name: str, stamp: int) -> Dataset:
    return load_dataset(name)  # stamp (the manifest's mtime) makes a re-import load afresh


def current_dataset(name: str) -> Dataset:
    manifest = dataset_folder(name) / MANIFEST
    return cached_dataset(name, manifest.stat().st_mtime_ns)


@st.cache_data(max_entries=600, show_spinner=False)
def thumbnail(path: str, size: int = THUMB) -> Image.Image:
    with Image.open(path) as image:
        image = image.convert("RGB")
    scale = size / max(image.size)
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        resample)


def overview(dataset: Dataset) -> None:
    stats = dataset.size_stats()
    cols = st.columns(4)
    cols[0].metric("Images", f"{len(dataset.items):,}")
    cols[1].metric("Classes", len(dataset.classes))
    cols[2].metric("Colour", "grayscale" if dataset.channels == 1 else "RGB")
    smallest = f"{stats['min_width']}×{stats['min_height']}"
    largest = f"{stats['max_width']}×{stats['max_height']}"
    sizes = smallest if smallest == largest else f"{smallest} – {largest}"
    cols[3].metric("Image size", sizes)
    if dataset.origin:
        st.caption(f"Origin: {plain(dataset.origin)}")
    layout_facts(dataset.layout, dataset.notes)


def balance(dataset: Dataset) -> None:
    table = dataset.class_split_counts()
    left, right = st.columns([3, 2])
    left.plotly_chart(balance_figure(table), key="balance_chart")
    rows = [{"class": cls, **counts, "total": sum(counts.values())}
            for cls, counts in table.items()]
    totals = {split: sum(row[split] for row in rows) for split in SPLITS}
    rows.append({"class": "all", **totals, "total": sum(totals.values())})
    right.markdown("**Split sizes**")
    right.dataframe(rows, hide_index=True, height="auto" if len(rows) <= 12 else 420,
                    placeholder=MISSING)
    imbalance_note(dataset, DATASETS_REMEDY)


def dropped_report(dataset: Dataset) -> None:
    if not dataset.dropped:
        st.caption("No files were dropped at import.")
        return
    with st.expander(f"Dropped at import: {len(dataset.dropped)} file(s)"):
        st.dataframe(dataset.dropped, hide_index=True,
                     column_config={"file": "File", "reason": "Why it was dropped"},
                     placeholder=MISSING)


def gallery(dataset: Dataset) -> None:
    st.markdown("**Samples per class**")
    classes = dataset.classes
    if len(classes) > GALLERY_CLASSES:
        classes = st.multiselect("Classes to show", dataset.classes,
                                 default=dataset.classes[:GALLERY_CLASSES], key="gallery_classes")
    by_label: dict[int, list[str]] = {}
    for item in dataset.items:
        by_label.setdefault(item.label, []).append(item.file)
    rng = random.Random(0)
    for cls in classes:
        files = by_label.get(dataset.classes.index(cls), [])
        picks = rng.sample(files, min(GALLERY_PER_CLASS, len(files)))
        cols = st.columns([1, 6], vertical_alignment="center")
        cols[0].markdown(f"**{plain(cls)}**  \n{len(files)} images")
        if picks:
            cols[1].image([thumbnail(str(dataset.folder / file)) for file in picks])


def augmentation_preview(dataset: Dataset, flip_default: bool = True,
                         shift_default: int = 2) -> None:
    st.markdown("**Augmentation preview** — what training sees: the same images, randomly "
                "flipped, shifted and colour-jittered on every epoch.")
    cols = st.columns(4, vertical_alignment="bottom")
    flip = cols[0].checkbox("Flip", value=flip_default, key="aug_flip",
                            help="Starts as the data's flip decision (above).")
    pad = cols[1].slider("Shift (pixels)", 0, 8, shift_default, key="aug_pad",
                         help="Starts as the data's shift decision (above).")
    jitter = cols[2].slider("Colour jitter", 0.0, 0.5, 0.0, 0.05, key="aug_jitter")
    if cols[3].button("New draw", key="aug_draw", icon=":material/casino:"):
        st.session_state["aug_seed"] = st.session_state.get("aug_seed", 0) + 1
    seed = st.session_state.get("aug_seed", 0)
    train = dataset.indices("train") or list(range(len(dataset.items)))
    picks = random.Random(seed).sample(train, min(PREVIEW_IMAGES, len(train)))
    size = default_image_size(dataset)
    mode = dataset_resize(dataset)[0]
    originals = np.stack([fit_image(Image.open(dataset.folder / dataset.items[i].file), size,
                                    dataset.channels, mode) for i in picks])
    augmented = augment_images(originals, Augment(flip, pad, jitter), seed)
    st.caption(f"Original (at the training size, {size}×{size}, resized by {mode})")
    st.image([enlarge(image) for image in originals])
    st.caption("Augmented")
    st.image([enlarge(image) for image in augmented])


def enlarge(array: np.ndarray, size: int = THUMB) -> Image.Image:
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    resample = Image.Resampling.NEAREST if image.width < size else Image.Resampling.LANCZOS
    return image.resize((size, size), resample)
