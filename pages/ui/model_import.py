"""The Classify page's "Import a model" tab: safetensors weights plus our JSON model card
become a new run. A pickle (.pt, .pth, …) is refused before a byte of it is read."""

from __future__ import annotations

import json
from pathlib import PurePath

import streamlit as st

from core.serving.model_import import EXPORT_HINT, PICKLE_SUFFIXES, import_model
from pages.ui.common import plain, store, user_errors

NOTICE_KEY = "classify_import_notice"


def card_name(card_file) -> str:
    """A name for the new run: the card's run name, else the card file's stem."""
    try:
        card = json.loads(card_file.getvalue())
        name = card.get("run_name") if isinstance(card, dict) else None
    except (ValueError, UnicodeDecodeError):
        name = None
    stem = PurePath(card_file.name).name.removesuffix(".json").removesuffix(".card")
    return f"{name or stem} (imported)"[:128]


def is_pickle(file) -> bool:
    return PurePath(file.name).suffix.lower() in PICKLE_SUFFIXES


def import_tab() -> None:
    with st.container(key="classify_import_notice_slot"):  # always drawn: nothing below shifts
        notice = st.session_state.pop(NOTICE_KEY, None)
        if notice:
            st.success(notice, icon=":material/check_circle:")
    st.caption("Bring in a model trained elsewhere (or exported from another CNN Studio): its "
               "weights as **safetensors** and its model card (a run's model.json or an "
               "export's .card.json). PyTorch pickles (.pt, .pth, .pkl) are never loaded: "
               "opening one can run any code.")
    cols = st.columns(2)
    weights = cols[0].file_uploader("Weights (.safetensors)", key="import_weights")
    card = cols[1].file_uploader("Model card (.json)", type=["json"], key="import_card")
    refused = weights is not None and is_pickle(weights)
    if refused:
        st.error(f"{plain(weights.name)} is a PyTorch pickle; pickles can run code when they are "
                 f"loaded, so they are not accepted. {plain(EXPORT_HINT)}",
                 icon=":material/block:")
    name = st.text_input("Name of the new run", key="import_name", max_chars=128,
                         placeholder=card_name(card) if card else "imported model")
    ready = weights is not None and card is not None and not refused
    if st.button("Import", type="primary", disabled=not ready, key="import_go",
                 icon=":material/upload:"):
        chosen = name.strip() or card_name(card)
        with user_errors("import the model"):
            run_id = import_model(weights.getvalue(), card.getvalue(), chosen, store())
            st.session_state[NOTICE_KEY] = (f"Imported {plain(chosen)} as a new run; it is "
                                            "selected above and listed on the Runs page.")
            st.session_state["classify_run_next"] = run_id
            st.rerun()
