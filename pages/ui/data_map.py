"""The Error analysis page's data map: a run's penultimate features of its test (or
validation) images in 2-D (core.analysis.data_map), a point per image coloured by its given
label, a cross where the run is wrong; a click on a point shows that image."""

from __future__ import annotations

from functools import partial

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.analysis.data_map import data_map
from core.data.dataset import load_dataset
from pages.ui.charts import base_layout, safe
from pages.ui.common import plain, store, user_errors, weights_stamp

SPLITS = {"test": "Test images", "val": "Validation images"}
METHODS = {"pca": "PCA (fast)", "tsne": "t-SNE (slower, tighter clusters)"}
DRAWN = "datamap_drawn"  # session: the (run, split, method) maps asked for
SVG_POINTS = 3000
PICKED = "datamap_picked"  # session: run id → the item index clicked


@st.cache_data(max_entries=8, show_spinner="Projecting the images' features…")
def cached_map(run_id: str, stamp: int, split: str, method: str) -> tuple[pd.DataFrame, str]:
    frame = data_map(run_id, split, method, store=store())
    return frame, frame.attrs["split"]


def map_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """A trace per given class (its colour); right answers as dots, wrong ones as crosses."""
    fig = go.Figure()
    trace = go.Scatter if len(frame) <= SVG_POINTS else go.Scattergl  # WebGL for big maps
    for given, rows in frame.groupby("given", sort=True):
        fig.add_trace(trace(
            x=rows["x"], y=rows["y"], mode="markers", name=safe(given),
            customdata=rows[["index"]].to_numpy(),
            text=[f"given {safe(g)}, predicted {safe(p)}"
                  for g, p in zip(rows["given"], rows["predicted"], strict=True)],
            marker={"symbol": ["circle" if ok else "x" for ok in rows["correct"]],
                    "size": [7 if ok else 10 for ok in rows["correct"]], "opacity": 0.8},
            hovertemplate="%{text}<br>click to see the image<extra></extra>"))
    base_layout(fig, title, "", "", height=520)
    fig.update_layout(hovermode="closest", clickmode="event+select", dragmode="pan")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def on_point_click(run_id: str) -> None:
    event = st.session_state.get(f"datamap_{run_id}")
    points = (event or {}).get("selection", {}).get("points") or []
    if points and points[0].get("customdata") is not None:
        data = points[0]["customdata"]
        st.session_state.setdefault(PICKED, {})[run_id] = int(data[0] if isinstance(
            data, list) else data)


def data_map_panel(run: dict) -> None:
    run_id = run["run_id"]
    st.caption("The run's penultimate-layer features of each image, projected to two "
               "dimensions: images the run sees as alike lie close. A cross is an image the "
               "run gets wrong; a point among another colour's cluster may be mislabelled.")
    cols = st.columns([1, 2, 1], vertical_alignment="bottom")
    split = cols[0].radio("Images", list(SPLITS), format_func=SPLITS.get, key="datamap_split")
    method = cols[1].radio("Projection", list(METHODS), format_func=METHODS.get,
                           key="datamap_method", horizontal=True)
    drawn: set = st.session_state.setdefault(DRAWN, set())
    wanted = (run_id, split, method)
    if wanted not in drawn:
        if not cols[2].button("Draw the data map", key="datamap_draw",
                              icon=":material/scatter_plot:"):
            return
        drawn.add(wanted)
    with user_errors("draw the data map"):
        frame, shown = cached_map(run_id, weights_stamp(run_id), split, method)
        if shown != split:
            st.caption(f"This dataset has no {split} images; the map shows the validation ones.")
        wrong = int((~frame["correct"]).sum())
        title = f"{SPLITS[shown]}: {len(frame)}, {wrong} wrong ({METHODS[method].split()[0]})"
        st.plotly_chart(map_figure(frame, title), key=f"datamap_{run_id}",
                        selection_mode="points", on_select=partial(on_point_click, run_id))
        picked_image(run, frame)


def picked_image(run: dict, frame: pd.DataFrame) -> None:
    index = st.session_state.get(PICKED, {}).get(run["run_id"])
    rows = frame[frame["index"] == index]
    if rows.empty:
        st.caption("Click a point to see its image.")
        return
    row = rows.iloc[0]
    dataset = load_dataset(run["data"])
    cols = st.columns([1, 4])
    cols[0].image(str(dataset.folder / row["file"]), width=128)
    verdict = "right" if row["correct"] else "wrong"
    cols[1].markdown(f"**given {plain(row['given'])}** · predicted **{plain(row['predicted'])}** "
                     f"({row['prob_predicted']:.0%}, {verdict})  \n"
                     f"{plain(row['file'])}")
