"""The Classify page's "Images" tab: uploads or a photo → top-k bars, latency, Grad-CAM,
optionally two models side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from core.analysis.explain import grad_cam, overlay
from core.analysis.latency import latency_text
from core.analysis.ranking import best_run_id
from core.serving.infer import LoadedModel, open_image
from pages.ui.charts import top_k_figure
from pages.ui.common import IMAGE_TYPES, pct, plain, weights_stamp
from pages.ui.model_choice import choose_run, model_for, timed_predict

MAX_SHOWN = 20  # images drawn at once; more belong in "Classify many"
PREVIEW = 512  # px: the shown image (and its heat map) is at most this large


@dataclass
class Upload:
    name: str
    data: bytes
    image: Image.Image
    preview: Image.Image


@dataclass
class Side:
    """One model in the view: its run and the loaded model."""
    run: dict
    model: LoadedModel


def decode_uploads(files: list) -> list[Upload]:
    """Each upload that decodes; an st.error for each that does not."""
    uploads = []
    for file in files:
        data = file.getvalue()
        try:
            image = open_image(data)
        except ValueError as error:
            st.error(f"{plain(file.name)}: {plain(error)} Upload a PNG, JPEG, GIF, BMP, WebP or "
                     "TIFF image.")
            continue
        preview = image.copy()
        preview.thumbnail((PREVIEW, PREVIEW))
        uploads.append(Upload(file.name, data, image, preview))
    return uploads


@st.cache_data(max_entries=64, show_spinner=False)
def heat_map(run_id: str, stamp: int, data: bytes) -> np.ndarray:
    """Grad-CAM of the predicted class, kept per (model, image): the opacity slider only
    re-blends. ValueError when the model has no spatial feature map."""
    model = model_for(run_id)
    return grad_cam(model, model.open(data))


def where_it_looked(side: Side, upload: Upload, opacity: float) -> Image.Image | None:
    """The image with its Grad-CAM heat map over it, or None (with a caption) if it has none."""
    run_id = side.run["run_id"]
    try:
        return overlay(upload.preview, heat_map(run_id, weights_stamp(run_id), upload.data),
                       opacity)
    except ValueError as error:
        st.caption(f"No heat map for this model: {plain(error)}")
        return None


def view_settings(model: LoadedModel) -> dict:
    """The uploaders and the switches beside them; returns files and settings."""
    cols = st.columns([3, 1])
    files = cols[0].file_uploader("Images to classify", type=IMAGE_TYPES,
                                  accept_multiple_files=True, key="classify_files")
    classes = len(model.classes)
    with cols[1]:
        k = st.slider("Top k", 1, min(10, classes), min(5, classes), key="classify_k")
        explain = st.toggle("Show where it looked", key="classify_cam",
                            help="Grad-CAM: the regions that raised the top class's score")
        opacity = 0.5
        if explain:
            opacity = st.slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="classify_opacity")
        compare = st.toggle("Compare with a second model", key="classify_compare")
        camera = st.toggle("Use the camera", key="classify_camera")
    files = list(files or [])
    if camera:
        photo = st.camera_input("Take a picture", key="classify_photo")
        if photo:
            files.append(photo)
    return {"files": files, "k": k, "explain": explain, "opacity": opacity, "compare": compare}


def second_side(runs: list[dict], first: str) -> Side | None:
    others = [run for run in runs if run["run_id"] != first]
    if not others:
        st.info("Train or import a second model to compare two side by side.")
        return None
    run_id = choose_run(others, "Second model", "classify_run2", best_run_id(others))
    run = next(run for run in others if run["run_id"] == run_id)
    return Side(run, model_for(run_id))


def images_tab(runs: list[dict], first: Side) -> None:
    settings = view_settings(first.model)
    sides = [first]
    if settings["compare"]:
        second = second_side(runs, first.run["run_id"])
        sides += [second] if second else []
    if not settings["files"]:
        st.info("Drop one or more images above (or take a photo) to see what the model thinks "
                "they are.")
        return
    uploads = decode_uploads(settings["files"])
    if len(uploads) > MAX_SHOWN:
        st.info(f"Showing the first {MAX_SHOWN} of {len(uploads)} images; the Classify many tab "
                "takes a whole folder or zip and gives a table.")
    for index, upload in enumerate(uploads[:MAX_SHOWN]):
        with st.container(border=True):
            if len(sides) == 1:
                one_model(first, upload, settings, index)
            else:
                side_by_side(sides, upload, settings, index)


def one_model(side: Side, upload: Upload, settings: dict, index: int) -> None:
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.image(upload.preview, caption=plain(upload.name), width=200)
    answer, ms = timed_predict(side.model, side.model.open(upload.data), settings["k"])
    if settings["explain"]:
        with left:
            heat = where_it_looked(side, upload, settings["opacity"])
        if heat is not None:
            left.image(heat, caption="where it looked (Grad-CAM)", width=200)
    with right:
        prediction(answer, ms, key=f"topk_{index}")


def side_by_side(sides: list[Side], upload: Upload, settings: dict, index: int) -> None:
    cols = st.columns([1, 2, 2])
    cols[0].image(upload.preview, caption=plain(upload.name), width="stretch")
    labels = []
    for number, (col, side) in enumerate(zip(cols[1:], sides, strict=True)):
        with col:
            st.markdown(f"**{plain(side.run['name'])}** · {plain(side.run['model'])}")
            answer, ms = timed_predict(side.model, side.model.open(upload.data), settings["k"])
            labels.append(None if answer["unknown"] else answer["top"][0]["label"])
            prediction(answer, ms, key=f"topk_{index}_{number}")
            if settings["explain"]:
                heat = where_it_looked(side, upload, settings["opacity"])
                if heat is not None:
                    st.image(heat, caption="where it looked (Grad-CAM)", width=200)
    verdict = "Both models agree." if labels[0] == labels[1] else "The models disagree."
    cols[0].caption(verdict)


UNKNOWN = "None of the classes I know"


def prediction(answer: dict, ms: dict, key: str) -> None:
    """The answer: the top class and its calibrated probability, or "None of the classes I
    know" with the closest guesses greyed when the image looks like no training image."""
    top = answer["top"]
    if answer["unknown"]:
        st.markdown(f"### {UNKNOWN}")
        st.caption(f"This image looks like none of the images the model trained on, so its "
                   f"guesses (greyed) mean little · closest: {plain(top[0]['label'])} "
                   f"{pct(top[0]['prob'])} · predicted in {latency_text(ms)}")
    else:
        st.markdown(f"### {plain(top[0]['label'])}")
        st.caption(f"{pct(top[0]['prob'])} sure (calibrated) · predicted in {latency_text(ms)}")
    st.plotly_chart(top_k_figure(top, muted=answer["unknown"]), key=key)
