"""Compare page, first half: the curves overlaid, the table of runs, the config differences."""

from __future__ import annotations

import base64
import functools
import io

import pandas as pd
import streamlit as st
from PIL import Image, ImageDraw

from core.analysis.compare import comparison_table, config_table, curves, smooth
from pages.ui.common import ACTIVE, MISSING, store
from pages.ui.compare_charts import curve_figure, png_config

CURVES = [  # (metric, title, y-axis title, as percent, best marker)
    ("epoch/val_acc", "Validation accuracy", "accuracy", True, "max"),
    ("epoch/val_loss", "Validation loss", "loss", False, "min"),
    ("epoch/train_acc", "Train accuracy (per epoch)", "accuracy", True, None),
    ("loss", "Train loss (per step)", "loss", False, None),
]
OTHER_CURVES = {"lr": "Learning rate", "images_per_s": "Images / s",
                "epoch/train_loss": "Train loss (per epoch)", "epoch/val_top5": "Validation top-5",
                "gpu_mem_gb": "GPU memory (GiB)"}
X_TITLES = {"step": "step", "epoch": "epoch", "seconds": "seconds since start"}
LIVE_SECONDS = 2.0
SIDE_BY_SIDE_RUNS = 5  # up to this many runs the curves sit two a row with legends on top


def curve_controls() -> tuple[str, float, bool]:
    cols = st.columns([2, 3, 1.3])
    x = cols[0].segmented_control("x axis", ["step", "epoch", "seconds"], default="epoch",
                                  key="compare_x") or "epoch"
    weight = cols[1].slider("Smoothing (EMA weight)", 0.0, 0.99, 0.0, 0.01, key="compare_smooth",
                            help="TensorBoard's smoothing; the raw values stay faint behind")
    log_y = cols[2].toggle("Log-scale loss", key="compare_log")
    return x, weight, log_y


def curves_section(runs: list[dict], colors: dict[str, str]) -> None:
    st.subheader("Training curves")
    x, weight, log_y = curve_controls()
    st.caption("★ marks each run's best epoch (highest validation accuracy, lowest validation "
               "loss). Colours are the same for a run in every chart on this page.")
    if any(run["status"] in ACTIVE for run in runs):
        live_curves({run["run_id"]: run["name"] for run in runs}, x, weight, log_y, colors)
    else:
        draw_curves(runs, x, weight, log_y, colors)


@st.fragment(run_every=LIVE_SECONDS)
def live_curves(names: dict[str, str], x: str, weight: float, log_y: bool,
                colors: dict[str, str]) -> None:
    """While a chosen run trains the curves redraw every few seconds (run id → name shown)."""
    db = store()
    runs = [{**run, "name": names[run_id]} for run_id in names if (run := db.get_run(run_id))]
    draw_curves(runs, x, weight, log_y, colors)


def draw_curves(runs: list[dict], x: str, weight: float, log_y: bool,
                colors: dict[str, str]) -> None:
    frame = curves(store(), [run["run_id"] for run in runs], x)
    if frame.empty:
        st.info("No metrics yet: the curves appear once the chosen runs have trained a little.")
        return
    frame = smooth(frame, weight)
    wide = len(runs) > SIDE_BY_SIDE_RUNS  # many runs: one chart a row, the legend at its side
    columns = st.columns(1 if wide else 2)
    for index, (metric, title, y_title, percent, best) in enumerate(CURVES):
        fig = curve_figure(frame, metric, runs, colors, title, X_TITLES[x], y_title,
                           percent=percent, log_y=log_y and not percent, best=best)
        if wide:
            side_legend(fig)
        columns[index % len(columns)].plotly_chart(fig, key=f"compare_curve_{index}",
                                                   config=png_config(metric.replace("/", "-")))
    other = [name for name in OTHER_CURVES if name in set(frame["name"])]
    if other:
        with st.expander("More curves"):
            name = st.selectbox("Metric", other, format_func=OTHER_CURVES.get,
                                key="compare_other")
            fig = curve_figure(frame, name, runs, colors, OTHER_CURVES[name], X_TITLES[x],
                               OTHER_CURVES[name], log_y=log_y)
            if wide:
                side_legend(fig)
            st.plotly_chart(fig, key="compare_curve_other", config=png_config("curve"))


def side_legend(fig) -> None:
    """The legend at the chart's right, one run a line, the chart tall enough to list all."""
    entries = sum(1 for trace in fig.data if trace.showlegend is not False)
    fig.update_layout(height=max(380, 24 * entries + 110),
                      legend={"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1,
                              "yanchor": "top"})


@functools.cache
def swatch(colour: str) -> str:
    """A coloured dot as a PNG data URL, so each table row carries its run's chart colour."""
    image = Image.new("RGBA", (32, 32), (0, 0, 0, 0))
    ImageDraw.Draw(image).ellipse((4, 4, 28, 28), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def results_table(runs: list[dict], colors: dict[str, str], latency: dict) -> pd.DataFrame:
    """The runs side by side: size, cost, best (with its epoch) and last validation accuracy,
    test accuracy. Returns core's comparison table (unformatted) for the other sections."""
    table = comparison_table(runs, latency)
    shown = table.assign(colour=[swatch(colors[run_id]) for run_id in table["run_id"]])
    for column in ("best_val_acc", "last_val_acc", "test_acc"):
        shown[column] = shown[column].astype(float) * 100
    percent = "%.1f %%"
    number = st.column_config.NumberColumn
    text = st.column_config.TextColumn
    columns = {"colour": st.column_config.ImageColumn("", width=30),  # ~750 px; status, model:
               "name": text("run", width=120), "status": text("status", width=75),  # when useful
               "model": text("model", width=75),
               "params": number("params", format="compact", width=60,
                                help="trainable parameters"),
               "flops": number("FLOPs", format="compact", width=60,
                               help="per image, forward pass"),
               "epochs": number("epochs", width=50),
               "train_seconds": number("time (s)", format="%.0f", width=60,
                                       help="wall time of the training loop, in seconds"),
               "images_per_s": number("img/s", format="%.0f", width=55,
                                      help="training images per second (first epoch left out)"),
               "best_val_acc": number("best val", format=percent, width=62,
                                      help="best validation accuracy"),
               "best_epoch": number("at epoch", format="%d", width=55,
                                    help="the epoch of the best validation accuracy"),
               "last_val_acc": number("last val", format=percent, width=62,
                                      help="validation accuracy of the last epoch"),
               "test_acc": number("test", format=percent, width=55,
                                  help="test accuracy of the best checkpoint"),
               "latency_p50_ms": number("ms (CPU)", format="%.2f", width=65,
                                        help="latency: median forward pass on the CPU, batch 1")}
    if shown["latency_p50_ms"].isna().all():
        columns.pop("latency_p50_ms")
    if set(shown["status"]) == {"completed"}:
        columns.pop("status")  # room for the numbers; the run picker shows every status
    if list(shown["name"]) == list(shown["model"]):
        columns.pop("model")  # a sweep's short names are the models already
    st.dataframe(shown, hide_index=True, column_order=list(columns), column_config=columns,
                 key="compare_table", placeholder=MISSING, width="stretch")
    return table


def unique_names(runs: list[dict]) -> dict[str, str]:
    """run id → a column title: the run's name, with its id's end where two names clash."""
    names = [run["name"] for run in runs]
    return {run["run_id"]: run["name"] if names.count(run["name"]) == 1
            else f"{run['name']} ({run['run_id'][-4:]})" for run in runs}


def config_section(runs: list[dict]) -> None:
    st.subheader("Settings")
    configs = {run["run_id"]: {k: v for k, v in run["config"].items() if k != "name"}
               for run in runs}
    table = config_table(configs)
    differing = int(table["differs"].sum())
    cols = st.columns([3, 2])
    cols[0].markdown("**Settings that differ**" if differing else
                     "**The runs share every training setting.**")
    only = cols[1].toggle("Differences only", value=True, key="compare_diff_only",
                          disabled=not differing)
    st.caption(f"{differing} of {len(table)} settings differ between the chosen runs; they are "
               "highlighted. A setting one run lacks shows “(not set)”.")
    if only and differing:
        table = table[table["differs"]]
    highlight = table["differs"]
    shown = table.drop(columns="differs").rename(columns=unique_names(runs))
    shown = shown.map(lambda v: MISSING if v is None else str(v))
    styled = shown.style.apply(
        lambda row: ["background-color: rgba(245, 158, 11, 0.25)" if highlight[row.name] else ""
                     for _ in row], axis=1)
    st.dataframe(styled, key="compare_config", placeholder=MISSING,
                 height=min(420, 35 * (len(shown) + 1) + 3))
