"""Compare page, second half: per class, confusion matrices and their difference, trade-offs
with the Pareto front, parallel coordinates, downloads."""

from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

from core.analysis.compare import (
    comparison_csv,
    confusion_difference,
    hyperparameter_frame,
    inference_latency,
    per_class_comparison,
    run_confusion,
    top_confusions,
    tradeoff_points,
)
from core.analysis.ranking import accuracy_key
from pages.ui.charts import confusion_figure, matrices_per_row
from pages.ui.common import MISSING, PAGES, has_model, plain, store, switch_to, user_errors
from pages.ui.compare_charts import (
    difference_figure,
    parallel_figure,
    per_class_figure,
    png_config,
    tradeoff_figure,
)

PARALLEL_FROM = 4  # runs: parallel coordinates help once there are more than a few
TRADEOFFS = [  # (x column, title, x-axis title)
    ("params", "Accuracy against parameters", "parameters"),
    ("latency_p50_ms", "Accuracy against inference latency", "latency (ms, CPU, batch 1)"),
    ("train_seconds", "Accuracy against training time", "training time (s)"),
]


def confusion_sentence(run: dict) -> str:
    """'triangle taken for square 4× (of 10)…' for one run, in markdown."""
    try:
        classes, matrix = run_confusion(run)
    except ValueError:
        return "no confusion matrix (no test split, or not finished)"
    pairs = top_confusions(classes, matrix)
    if not pairs:
        return "no mistakes on the test split"
    return "; ".join(f"{plain(true)} taken for {plain(pred)} {n}× (of {total})"
                     for true, pred, n, total in pairs)


def reference_first(runs: list[dict]) -> list[dict]:
    """The runs with the chosen reference first (differences are run − reference)."""
    if len(runs) < 2:
        return runs
    by_id = {run["run_id"]: run for run in runs}
    ref = st.selectbox("Reference run (differences are other − reference)", list(by_id),
                       key="compare_reference", format_func=lambda i: by_id[i]["name"])
    return [by_id[ref], *(run for run in runs if run["run_id"] != ref)]


def per_class_section(runs: list[dict], colors: dict[str, str]) -> None:
    runs = [run for run in runs if (run.get("summary") or {}).get("per_class")]
    if not runs:
        return
    st.subheader("Per class")
    runs = reference_first(runs)
    frame = per_class_comparison(runs)
    metric = st.segmented_control("Per-class metric", ["accuracy", "f1"], default="accuracy",
                                  key="compare_class_metric",
                                  format_func=lambda m: "F1" if m == "f1" else "accuracy") \
        or "accuracy"
    left, right = st.columns(2)
    left.plotly_chart(per_class_figure(frame, metric, runs, colors), key="compare_per_class",
                      config=png_config(f"per-class-{metric}"))
    names = {run["run_id"]: run["name"] for run in runs}
    table = frame.pivot(index="class", columns="run_id", values=metric)[list(names)]
    diffs = frame.pivot(index="class", columns="run_id", values=f"{metric}_diff")
    for run_id in list(names)[1:]:
        table[f"Δ {names[run_id]}"] = diffs[run_id]
    table = table.rename(columns=names)
    right.caption(f"{'F1' if metric == 'f1' else 'Accuracy'} per class on the test split; Δ is "
                  f"the run − {plain(runs[0]['name'])} (positive: better).")
    deltas = [c for c in table if c.startswith("Δ ")]
    styled = table.style.format("{:.1%}", subset=[c for c in table if c not in deltas],
                                na_rep=MISSING) \
        .format("{:+.1%}", subset=deltas, na_rep=MISSING).map(delta_colour, subset=deltas)
    widths = {"_index": st.column_config.Column(width=110)} | {
        column: st.column_config.Column(width=90) for column in table}
    right.dataframe(styled, key="compare_class_table", column_config=widths, width="stretch",
                    placeholder=MISSING)


def delta_colour(value: float) -> str:
    """Green where a run beats the reference, red where it trails; stronger for more."""
    if value is None or pd.isna(value) or abs(value) < 1e-9:
        return ""
    alpha = min(0.6, 0.15 + abs(value))
    return f"background-color: rgba({'16, 185, 129' if value > 0 else '220, 38, 38'}, {alpha:.2f})"


def confusion_section(runs: list[dict]) -> None:
    shown = [run for run in runs if (run.get("summary") or {}).get("confusion")]
    if not shown:
        return
    st.subheader("Confusion matrices (test split)")
    for run in shown:
        st.markdown(f"- **{plain(run['name'])}** confuses most: {confusion_sentence(run)}")
    per_row = matrices_per_row(max(len(run_confusion(run)[0]) for run in shown))
    for start in range(0, len(shown), per_row):
        row = shown[start:start + per_row]
        for column, run in zip(st.columns(per_row), row, strict=False):
            classes, matrix = run_confusion(run)
            column.plotly_chart(confusion_figure(matrix.tolist(), classes, run["name"]),
                                key=f"compare_confusion_{run['run_id']}",
                                config=png_config(f"confusion-{run['name']}"))
    if len(shown) >= 2:
        difference(shown)
    if st.button("Open error analysis (validation images of each cell)",
                 icon=":material/troubleshoot:", key="compare_to_mistakes"):
        st.session_state["mistakes_run"] = shown[0]["run_id"]
        switch_to(PAGES["mistakes"])


def difference(runs: list[dict]) -> None:
    by_id = {run["run_id"]: run for run in runs}
    ids = list(by_id)
    cols = st.columns(2)
    first = cols[0].selectbox("Difference: from", ids, key="compare_diff_a",
                              format_func=lambda i: by_id[i]["name"])
    rest = [i for i in ids if i != first]
    second = cols[1].selectbox("to", rest, key="compare_diff_b",
                               format_func=lambda i: by_id[i]["name"])
    classes_a, a = run_confusion(by_id[first])
    classes_b, b = run_confusion(by_id[second])
    with user_errors("compare the confusion matrices"):
        diff = confusion_difference(a, b, classes_a, classes_b)
        title = f"{by_id[second]['name']} − {by_id[first]['name']}"
        left, right = st.columns([3, 2] if len(classes_a) <= 12 else [4, 1])  # cells stay legible
        left.plotly_chart(difference_figure(diff, classes_a, title), key="compare_confusion_diff",
                          config=png_config("confusion-difference"))
        right.caption(f"Each cell: the share of that true class {plain(by_id[second]['name'])} "
                      f"puts there minus the share {plain(by_id[first]['name'])} puts there. "
                      "Blue on the diagonal: the second run gets that class right more often; "
                      "red off the diagonal: it makes that mistake less often.")


def measure_latency(runs: list[dict]) -> dict:
    """Measured on demand (it loads each model); kept for the session."""
    latency: dict = st.session_state.setdefault("compare_latency", {})
    todo = [run for run in runs if run["run_id"] not in latency and has_model(run)]
    label = "Measure inference latency" if todo else "Latency measured"
    if st.button(label, key="compare_latency_go", icon=":material/timer:", disabled=not todo,
                 help="Times each model's forward pass on the CPU, one image at a time"):
        with user_errors("measure the latency"), st.spinner("Timing each model…"):
            for run in todo:
                latency[run["run_id"]] = inference_latency(run["run_id"], store=store())
            st.rerun()  # the button's label, the table and "At a glance" all show it now
    return {run["run_id"]: latency[run["run_id"]] for run in runs if run["run_id"] in latency}


def tradeoff_section(table: pd.DataFrame, colors: dict[str, str]) -> None:
    y = accuracy_key(table)
    y_title = "test accuracy" if y == "test_acc" else "best val accuracy"
    plots = [(x, title, x_title) for x, title, x_title in TRADEOFFS if table[x].notna().any()]
    if not plots or table[y].isna().all():
        return
    st.subheader("Trade-offs")
    st.caption("Ringed runs are on the Pareto front: no other run is both more accurate and "
               "cheaper on that axis. Hover a point for its run; latency appears once measured "
               "(button above the table).")
    for column, (x, title, x_title) in zip(st.columns(len(plots)), plots, strict=True):
        points = tradeoff_points(table, x, y)
        fig = tradeoff_figure(points, x, y, colors, title, x_title, y_title, si=x == "params")
        column.plotly_chart(fig,
                            key=f"compare_tradeoff_{x}", config=png_config(f"tradeoff-{x}"))


def parallel_section(runs: list[dict]) -> None:
    if len(runs) < PARALLEL_FROM:
        return
    target = "test_acc" if any(run.get("test_acc") is not None for run in runs) \
        else "best_val_acc"
    frame = hyperparameter_frame(runs, target).drop(columns=["extra.spec"], errors="ignore")
    if len(frame.columns) < 2 or frame[target].isna().all():
        return
    label = "test accuracy" if target == "test_acc" else "best val accuracy"
    st.plotly_chart(parallel_figure(frame, target, label), key="compare_parallel",
                    config=png_config("parallel-coordinates"))
    st.caption("Hyperparameters → accuracy: one line per run across the settings that vary; "
               "drag along an axis to filter.")


def downloads(runs: list[dict], table: pd.DataFrame) -> None:
    st.subheader("Download")
    ids = [run["run_id"] for run in runs]
    cols = st.columns([1, 1, 3])
    cols[0].download_button("Metrics (CSV)", partial(comparison_csv, store(), ids),
                            file_name="comparison-metrics.csv", mime="text/csv",
                            icon=":material/download:", key="compare_csv", on_click="ignore",
                            help="Every metric row of these runs, then their final results")
    cols[1].download_button("Summary table (CSV)", table.to_csv(index=False),
                            file_name="comparison-summary.csv", mime="text/csv",
                            icon=":material/table:", key="compare_table_csv", on_click="ignore")
    cols[2].caption("Charts as PNG: hover a chart and click the camera icon in its toolbar "
                    "(top right). The browser draws the image, so it looks as on screen.")
