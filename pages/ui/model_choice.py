"""The Classify page's models: which run to use, loading it once per process, timing a call."""

from __future__ import annotations

import streamlit as st
from PIL import Image

from core.analysis.latency import repeated_ms
from core.serving.infer import LoadedModel, load_model
from pages.ui.common import pct, plain, weights_stamp

MAX_CLASSES_LISTED = 12


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def cached_model(run_id: str, stamp: int) -> LoadedModel:
    """The run's model (stamp, the weights' mtime, reloads a model trained further), warmed
    up with one call so the first latency shown is not the one-off start-up cost."""
    model = load_model(run_id)
    size, channels = model.card["image_size"], model.card["in_chans"]
    model.top_k([Image.new("L" if channels == 1 else "RGB", (size, size))], 1)
    return model


def model_for(run_id: str) -> LoadedModel:
    """The run's model, loaded once and kept (st.cache_resource); ModelUnavailable (a
    ValueError) with a sentence when its checkpoint is missing or broken."""
    return cached_model(run_id, weights_stamp(run_id))


def run_option(run: dict) -> str:
    """A run in a select box (plain text): name, model, test accuracy, status if unfinished."""
    status = "" if run["status"] == "completed" else f"  ·  {run['status']}"
    return f"{run['name']}  ·  {run['model']}  ·  test {pct(run.get('test_acc'))}{status}"


def choose_run(runs: list[dict], label: str, key: str, default: str) -> str:
    """A select box of runs whose value starts at `default` and stays valid when runs go."""
    by_id = {run["run_id"]: run for run in runs}
    pending = st.session_state.pop(f"{key}_next", None)  # set before a rerun (an import)
    if pending in by_id:
        st.session_state[key] = pending
    if st.session_state.get(key) not in by_id:
        st.session_state[key] = default
    return st.selectbox(label, list(by_id), key=key, persist_state="session",
                        format_func=lambda run_id: run_option(by_id[run_id]))


def describe_run(run: dict, model: LoadedModel) -> str:
    """One caption line: model, accuracy, classes, input size (markdown-escaped)."""
    classes = model.classes
    shown = ", ".join(plain(name) for name in classes[:MAX_CLASSES_LISTED])
    if len(classes) > MAX_CLASSES_LISTED:
        shown += f", … ({len(classes) - MAX_CLASSES_LISTED} more)"
    size = model.card["image_size"]
    return (f"{plain(run['model'])} · test accuracy **{pct(run.get('test_acc'))}** "
            f"(validation {pct(run.get('best_val_acc'))}) · {len(classes)} classes: {shown} · "
            f"images resized and centre-cropped to {size}×{size} px, as in validation")


def timed_predict(model: LoadedModel, image: Image.Image, k: int) -> tuple[dict, dict]:
    """The image's answer ({top, unknown, score}: LoadedModel.predict) and how long a call
    takes (preprocessing, forward pass, softmax and the unknown-input score: what a caller
    waits for), as the median of several calls with their spread (core.analysis.latency)."""
    answer, timing = repeated_ms(lambda: model.predict([image], k)[0])
    return answer, timing
