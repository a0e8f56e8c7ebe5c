"""The Train form's "Start from weights" for a timm architecture: random, timm's ImageNet
weights (downloaded by the worker on first use, only when chosen here), or a weights file on
this machine. Its value is the config's `weights` setting."""

from __future__ import annotations

import streamlit as st

from core.config import settings
from models import PRETRAINED_NAMES, list_presets
from models.timm_weights import PRETRAINED

KINDS = {"random": "Random weights", "pretrained": "ImageNet weights (download through timm)",
         "file": "A weights file on this machine"}
CUSTOM_NAME = "custom-cnn"


def is_timm(model: str) -> bool:
    return model not in list_presets() and model != CUSTOM_NAME and model not in PRETRAINED_NAMES


def weights_settings(model: str) -> None:
    """Sets st.session_state["train_weights"]: None, "pretrained" or a file's path."""
    state = st.session_state
    if not is_timm(model):
        state["train_weights"] = None
        return
    if "train_weights_kind" not in state:  # a clone or a recipe may have set the value
        chosen = state.get("train_weights")
        state["train_weights_kind"] = ("random" if not chosen else
                                       "pretrained" if chosen == PRETRAINED else "file")
        state["train_weights_file"] = chosen if chosen not in (None, PRETRAINED) else ""
    cols = st.columns([2, 3])
    kind = cols[0].selectbox(settings()["weights"].label, list(KINDS), key="train_weights_kind",
                             format_func=KINDS.get, help=settings()["weights"].help)
    if kind == "pretrained":
        cols[1].caption("The worker downloads them from the Hugging Face Hub when the run "
                        "starts (first use only; kept in the workspace). Without internet the "
                        "run says so: then give a weights file instead.")
        state["train_weights"] = PRETRAINED
    elif kind == "file":
        path = cols[1].text_input("Weights file (path on the machine that trains)",
                                  key="train_weights_file",
                                  placeholder="/data/weights/resnet18.safetensors")
        state["train_weights"] = path.strip() or None
    else:
        state["train_weights"] = None
