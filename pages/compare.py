"""Compare: several runs' curves overlaid, their final numbers, and how their settings differ."""

import streamlit as st

from pages._common import (
    ACTIVE,
    ICONS,
    PAGES,
    count,
    duration,
    ensure_routed,
    metric_log,
    pct,
    run_label,
    store,
)
from pages.charts import Trace, confusion_figure, line_figure, scatter_figure

METRICS = {  # label → (metric name, y-axis title, as percent)
    "Validation accuracy": ("epoch/val_acc", "accuracy", True),
    "Validation loss": ("epoch/val_loss", "loss", False),
    "Train accuracy": ("epoch/train_acc", "accuracy", True),
    "Train loss (per epoch)": ("epoch/train_loss", "loss", False),
    "Train loss (per step)": ("loss", "loss", False),
    "Learning rate": ("lr", "learning rate", False),
    "Images / s": ("images_per_s", "images / s", False),
}
SKIP_KEYS = {"name", "extra"}


def overlay(runs: list[dict], metric: str, x: str) -> None:
    name, y_title, percent = METRICS[metric]
    db = store()
    traces = [Trace(run["name"], *metric_log(run, db).series(name, x),
                    mode="lines" if not name.startswith("epoch/") else "lines+markers")
              for run in runs]
    st.plotly_chart(line_figure(traces, metric, x, y_title, percent=percent), key="compare_chart")


@st.fragment(run_every=2.0)
def live_overlay(run_ids: list[str], metric: str, x: str) -> None:
    runs = [run for run in (store().get_run(run_id) for run_id in run_ids) if run]
    overlay(runs, metric, x)


def results_table(runs: list[dict]) -> None:
    rows = []
    for run in runs:
        summary = run.get("summary") or {}
        rows.append({"run": run["name"], "status": run["status"], "model": run["model"],
                     "data": run["data"], "epochs": run["epoch"],
                     "best val acc": pct(run["best_val_acc"]), "test acc": pct(run["test_acc"]),
                     "train time": duration(summary.get("train_seconds")),
                     "images / s": count(summary.get("train_images_per_s")),
                     "params": count(summary.get("params")), "FLOPs": count(summary.get("flops"))})
    st.dataframe(rows, hide_index=True)


def config_differences(runs: list[dict]) -> None:
    keys = sorted({key for run in runs for key in run["config"]} - SKIP_KEYS)
    differing = [key for key in keys if len({repr(run["config"].get(key)) for run in runs}) > 1]
    if not differing:
        st.caption("The runs share every training setting.")
        return
    st.markdown("**Settings that differ**")
    st.dataframe([{"run": run["name"], **{key: str(run["config"].get(key)) for key in differing}}
                  for run in runs], hide_index=True)


def accuracy_vs_size(runs: list[dict]) -> None:
    """Only when the runs' models differ in size: accuracy bought per parameter."""
    points = [{"name": run["name"], "params": (run.get("summary") or {}).get("params"),
               "acc": run["test_acc"]} for run in runs]
    sizes = {p["params"] for p in points if p["params"] and p["acc"] is not None}
    if len(sizes) < 2:
        return
    fig = scatter_figure(points, "params", "acc", "Test accuracy against size", "parameters",
                         "test accuracy", log_x=max(sizes) > 10 * min(sizes))
    fig.update_yaxes(tickformat=".0%", range=[0, 1.08])
    st.plotly_chart(fig, key="compare_scatter")


def confusions(runs: list[dict]) -> None:
    shown = [run for run in runs if (run.get("summary") or {}).get("confusion")][:3]
    if not shown:
        return
    with st.expander("Confusion matrices (test split)"):
        for column, run in zip(st.columns(len(shown)), shown, strict=True):
            summary = run["summary"]
            classes = [row["class"] for row in summary.get("per_class", [])]
            column.plotly_chart(confusion_figure(summary["confusion"], classes, run["name"]),
                                key=f"confusion_{run['run_id']}")


def compare_page(runs: list[dict]) -> None:
    by_id = {run["run_id"]: run for run in runs}
    with_data = [run["run_id"] for run in runs if run["epoch"] or run["status"] in ACTIVE]
    default = with_data[:2] or list(by_id)[:2]
    picked = st.multiselect("Runs", list(by_id), default=default, key="compare_runs",
                            format_func=lambda run_id: run_label(by_id[run_id]))
    if not picked:
        st.info("Choose at least one run.")
        return
    chosen = [by_id[run_id] for run_id in picked]
    cols = st.columns([3, 2])
    metric = cols[0].selectbox("Curve", list(METRICS), key="compare_metric")
    x = cols[1].segmented_control("x axis", ["epoch", "step", "seconds"], default="epoch",
                                  key="compare_x") or "epoch"
    if any(run["status"] in ACTIVE for run in chosen):
        live_overlay(picked, metric, x)
    else:
        overlay(chosen, metric, x)
    results_table(chosen)
    config_differences(chosen)
    accuracy_vs_size(chosen)
    confusions(chosen)


ensure_routed()
st.title("Compare runs")
all_runs = store().list_runs()
if not all_runs:
    st.info("No runs to compare yet. Train two models (say, two presets on the same data) and "
            "come back.")
    st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
else:
    compare_page(all_runs)
