"""The Train page's layer-by-layer editor for a custom CNN, with a live parameter count."""

from __future__ import annotations

import math

import streamlit as st

from models import ACTIVATION_NAMES, LAYER_TYPES, ModelError, spec_summary, validate_spec
from pages.ui.common import MISSING, plain

ACTIVATIONS = ["", *ACTIVATION_NAMES]  # "": none
STARTER = [  # the tiny-cnn preset, written as layers
    {"layer": "conv", "size": 32, "kernel": 3, "stride": 1, "activation": "relu"},
    {"layer": "pool", "size": 2},
    {"layer": "conv", "size": 64, "kernel": 3, "stride": 1, "activation": "relu"},
    {"layer": "pool", "size": 2},
    {"layer": "dense", "size": 128, "activation": "relu"},
]
COLUMNS = ["layer", "size", "kernel", "stride", "activation", "rate", "kind"]
HELP = ("**size**: filters (conv), window (pool) or units (dense) · **kernel**, **stride**: conv "
        "only · **activation**: after conv / dense, or the function of an activation layer · "
        "**rate**: dropout · **kind**: max or avg for pool and globalpool. A final dense layer "
        "to the classes is added for you.")


def blank(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def as_int(value: object, default: int) -> int:
    return default if blank(value) else int(value)


def row_to_layer(row: dict) -> dict | None:
    """One editor row → one spec layer (only the keys that layer type takes)."""
    kind = row.get("layer")
    if blank(kind):
        return None
    activation = None if blank(row.get("activation")) else row["activation"]
    pool_kind = "max" if blank(row.get("kind")) else row["kind"]
    if kind == "conv":
        layer = {"type": "conv", "filters": as_int(row.get("size"), 32),
                 "kernel": as_int(row.get("kernel"), 3), "stride": as_int(row.get("stride"), 1)}
        return layer | ({"activation": activation} if activation else {})
    if kind == "dense":
        layer = {"type": "dense", "units": as_int(row.get("size"), 128)}
        return layer | ({"activation": activation} if activation else {})
    if kind == "pool":
        return {"type": "pool", "kind": pool_kind, "size": as_int(row.get("size"), 2)}
    if kind == "globalpool":
        return {"type": "globalpool", "kind": "avg" if blank(row.get("kind")) else row["kind"]}
    if kind == "dropout":
        return {"type": "dropout", "rate": 0.5 if blank(row.get("rate")) else float(row["rate"])}
    if kind == "activation":
        return {"type": "activation", "fn": activation or "relu"}
    return {"type": kind}


def layer_to_row(layer: dict) -> dict:
    """One spec layer → one editor row (for cloning a run that used a custom spec)."""
    kind = layer.get("type", "")
    size = layer.get("filters") or layer.get("units") or layer.get("size")
    return {"layer": kind, "size": size if isinstance(size, int) else None,
            "kernel": layer.get("kernel"), "stride": layer.get("stride"),
            "activation": layer.get("activation") or layer.get("fn") or "",
            "rate": layer.get("rate"), "kind": layer.get("kind") or ""}


def rows_to_spec(rows: list[dict], name: str = "custom-cnn") -> dict:
    layers = [layer for layer in (row_to_layer(row) for row in rows) if layer is not None]
    return {"name": name, "layers": layers}


def load_spec_into_editor(spec: dict) -> None:
    """Start the editor from a spec (a cloned run's)."""
    st.session_state["layer_rows"] = [layer_to_row(layer) for layer in spec.get("layers", [])]
    st.session_state["layer_editor_version"] = st.session_state.get("layer_editor_version", 0) + 1


def layer_editor(in_chans: int, image_size: int, num_classes: int) -> dict | None:
    """Draw the editor; returns the spec when it builds, else None (problems shown)."""
    rows = st.session_state.setdefault("layer_rows", [dict(row) for row in STARTER])
    version = st.session_state.get("layer_editor_version", 0)
    st.caption(HELP)
    edited = st.data_editor(
        [{column: row.get(column) for column in COLUMNS} for row in rows],
        num_rows="dynamic", key=f"layer_editor_{version}", hide_index=False, placeholder="",
        column_config={
            "layer": st.column_config.SelectboxColumn("layer", options=LAYER_TYPES, required=True),
            "size": st.column_config.NumberColumn("size", min_value=1, step=1),
            "kernel": st.column_config.NumberColumn("kernel", min_value=1, step=1),
            "stride": st.column_config.NumberColumn("stride", min_value=1, step=1),
            "activation": st.column_config.SelectboxColumn("activation", options=ACTIVATIONS),
            "rate": st.column_config.NumberColumn("rate", min_value=0.0, max_value=0.95,
                                                  step=0.05),
            "kind": st.column_config.SelectboxColumn("kind", options=["", "max", "avg"]),
        })
    spec = rows_to_spec(list(edited))
    return check_spec(spec, in_chans, image_size, num_classes)


def check_spec(spec: dict, in_chans: int, image_size: int, num_classes: int) -> dict | None:
    problems = validate_spec(spec, in_chans, image_size)
    if problems:
        st.error("This network cannot be built yet:\n\n"
                 + "\n".join(f"- {plain(problem)}" for problem in problems))
        return None
    try:
        summary = spec_summary(spec, in_chans, image_size, num_classes=num_classes)
    except ModelError as error:
        st.error(plain(error))
        return None
    total = sum(layer["params"] for layer in summary)
    st.metric("Parameters", f"{total:,}")
    with st.expander("Layer shapes"):
        st.dataframe([{"#": "auto" if layer["auto"] else layer["index"], "layer": layer["type"],
                       "output": "×".join(str(d) for d in layer["output_shape"]),
                       "params": layer["params"]} for layer in summary],
                     hide_index=True, placeholder=MISSING)
    return spec
