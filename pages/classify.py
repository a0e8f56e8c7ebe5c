"""Classify: choose a trained run, drop in images, see its top-k classes with probabilities."""

import streamlit as st
from PIL import Image

from core.explain import grad_cam, overlay
from core.infer import LoadedModel, load_model, open_image
from core.runs import run_folder
from pages._common import (
    ICONS,
    PAGES,
    ensure_routed,
    has_model,
    pct,
    plain,
    run_label,
    store,
    user_errors,
)
from pages.charts import top_k_figure

IMAGE_TYPES = ["png", "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff"]
BATCH = 32


@st.cache_resource(max_entries=3, show_spinner="Loading the model…")
def cached_model(run_id: str, stamp: int) -> LoadedModel:
    return load_model(run_id)  # stamp (the weights' mtime) reloads a model trained further


def model_for(run_id: str) -> LoadedModel:
    weights = run_folder(run_id) / "best.safetensors"
    return cached_model(run_id, weights.stat().st_mtime_ns)


def decode_uploads(files: list) -> list[tuple[str, Image.Image]]:
    """(file name, image) for each upload that decodes; an st.error for each that does not."""
    images = []
    for file in files:
        try:
            images.append((file.name, open_image(file.getvalue())))
        except ValueError as error:
            st.error(f"{plain(file.name)}: {plain(error)} Upload a PNG, JPEG, GIF, BMP, WebP or "
                     "TIFF image.")
    return images


def where_it_looked(model: LoadedModel, image: Image.Image) -> Image.Image | None:
    """The image with a Grad-CAM heat map over it, or None (with a caption) if it has none."""
    try:
        return overlay(image, grad_cam(model, image))
    except ValueError as error:
        st.caption(f"No heat map for this model: {plain(error)}")
        return None


def show_predictions(model: LoadedModel, images: list[tuple[str, Image.Image]], k: int,
                     explain: bool) -> None:
    tops: list[list[dict]] = []
    for start in range(0, len(images), BATCH):
        tops += model.top_k([image for _, image in images[start:start + BATCH]], k)
    for index, ((name, image), top) in enumerate(zip(images, tops, strict=True)):
        with st.container(border=True):
            left, right = st.columns([1, 3], vertical_alignment="center")
            left.image(image, caption=plain(name), width=160)
            heat = where_it_looked(model, image) if explain else None
            if heat is not None:
                left.image(heat, caption="where it looked (Grad-CAM)", width=160)
            right.markdown(f"### {plain(top[0]['label'])}")
            right.caption(f"{pct(top[0]['prob'])} sure")
            right.plotly_chart(top_k_figure(top), key=f"topk_{index}")


def classify_page(runs: list[dict]) -> None:
    by_id = {run["run_id"]: run for run in runs}
    if st.session_state.get("classify_run") not in by_id:
        st.session_state.pop("classify_run", None)  # its run was deleted since
    run_id = st.selectbox("Trained run", list(by_id), key="classify_run", persist_state="session",
                          format_func=lambda i: run_label(by_id[i]))
    run = by_id[run_id]
    with user_errors("load this run's model"):
        model = model_for(run_id)
        st.caption(f"{plain(run['model'])} · {len(model.classes)} classes · "
                   f"{model.card['image_size']} px · test accuracy {pct(run['test_acc'])}")
        cols = st.columns([3, 1])
        files = cols[0].file_uploader("Images to classify", type=IMAGE_TYPES,
                                      accept_multiple_files=True, key="classify_files")
        k = cols[1].slider("Top k", 1, min(10, len(model.classes)), min(5, len(model.classes)),
                           key="classify_k")
        explain = cols[1].toggle("Show where it looked", key="classify_cam",
                                 help="Grad-CAM: the regions that raised the top class's score")
        if cols[1].toggle("Use the camera", key="classify_camera"):
            photo = st.camera_input("Take a picture", key="classify_photo")
            files = [*files, photo] if photo else files
        if not files:
            st.info("Drop one or more images above to see what the model thinks they are.")
            return
        show_predictions(model, decode_uploads(files), k, explain)


ensure_routed()
st.title("Classify")
trained = [run for run in store().list_runs() if has_model(run)]
if not trained:
    st.info("No trained model yet. Train one first; any run that finished an epoch can "
            "classify images.")
    st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
else:
    classify_page(trained)
