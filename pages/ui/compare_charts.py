"""Plotly figures for Compare, Sweeps and Error analysis: one colour per run, Pareto fronts,
difference matrices, a clickable confusion matrix.

Pure functions (no Streamlit): data in, `go.Figure` out. Colours come from
core.analysis.compare.run_colors so a run looks the same in every chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pages.ui.charts import (
    MATRIX_TEXT_UP_TO,
    base_layout,
    confusion_figure,
    line_layout,
    matrix_axes,
    matrix_size,
    safe,
    thin,
)

LABELLED_POINTS = 6  # trade-off charts name their points up to this many runs
BEST_MARKER = {"symbol": "star", "size": 15, "line": {"width": 1, "color": "white"}}


def png_config(filename: str) -> dict:
    """The chart toolbar's camera button downloads a PNG, drawn by the browser (no kaleido)."""
    return {"displaylogo": False,
            "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2}}


def curve_figure(frame: pd.DataFrame, metric: str, runs: Sequence[dict], colors: dict[str, str],
                 title: str, x_title: str, y_title: str, *, percent: bool = False,
                 log_y: bool = False, best: str | None = None) -> go.Figure:
    """One line per run from a (smoothed) core.analysis.compare curves frame. With smoothing the raw
    values stay faint behind. `best` ("max" or "min") stars each run's best raw point."""
    rows = frame[frame["name"] == metric]
    fig = go.Figure()
    for run in runs:
        own = rows[rows["run_id"] == run["run_id"]]
        if own.empty:
            continue
        colour, name = colors[run["run_id"]], safe(run["name"])
        raw = own["raw"] if "raw" in own else own["value"]
        markers = "lines+markers" if metric.startswith("epoch/") else "lines"
        if "raw" in own and not np.allclose(own["raw"], own["value"], equal_nan=True):
            xs, ys = thin(own["x"].tolist(), raw.tolist())
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 1, "color": colour},
                                     opacity=0.25, legendgroup=name, showlegend=False,
                                     hoverinfo="skip"))
        xs, ys = thin(own["x"].tolist(), own["value"].tolist())
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode=markers, legendgroup=name,
                                 line={"width": 2, "color": colour},
                                 marker={"size": 6, "color": colour}))
        if best:
            at = int(np.nanargmax(raw) if best == "max" else np.nanargmin(raw))
            value = float(raw.iloc[at])
            shown = f"{value:.1%}" if percent else f"{value:.4g}"
            fig.add_trace(go.Scatter(
                x=[own["x"].iloc[at]], y=[value], mode="markers", legendgroup=name,
                showlegend=False, marker={**BEST_MARKER, "color": colour}, text=[name],
                hovertemplate=f"%{{text}}: best {shown}<extra></extra>"))
    return line_layout(fig, title, x_title, y_title, log_y=log_y, percent=percent)


def tradeoff_figure(points: pd.DataFrame, x: str, y: str, colors: dict[str, str], title: str,
                    x_title: str, y_title: str, *, si: bool = False) -> go.Figure:
    """One marker per run (core.analysis.compare.tradeoff_points); the Pareto front joined by a
    dashed line and its runs ringed. A log x axis when the values span more than tenfold."""
    usable = points.dropna(subset=[x, y])
    fig = go.Figure()
    if usable.empty:
        return base_layout(fig, title, x_title, y_title)
    front = usable[usable["pareto"]].sort_values(x)
    if len(front) > 1:
        fig.add_trace(go.Scatter(x=front[x], y=front[y], mode="lines", name="Pareto front",
                                 line={"dash": "dash", "color": "#94a3b8"}, hoverinfo="skip"))
    x_format = "%{x:.4~s}" if si else "%{x:.4~g}"
    mode = "markers+text" if len(usable) <= LABELLED_POINTS else "markers"  # else: hover
    for _, row in usable.iterrows():
        ring = {"width": 3, "color": "#111827"} if row["pareto"] else {"width": 0}
        fig.add_trace(go.Scatter(
            x=[row[x]], y=[row[y]], mode=mode, name=safe(row["name"]),
            text=[safe(row["name"])], textposition="top center", cliponaxis=False,
            showlegend=False, marker={"size": 13, "color": colors.get(row["run_id"]),
                                      "line": ring},
            hovertemplate=f"%{{text}}<br>{x_title} {x_format}<br>{y_title} "
                          "%{y:.1%}" + (" (on the front)" if row["pareto"] else "")
                          + "<extra></extra>"))
    base_layout(fig, title, x_title, y_title)
    fig.update_layout(hovermode="closest", margin={"l": 60, "r": 60})
    values = [float(v) for v in usable[x] if v and v > 0]
    log_x = len(values) > 1 and max(values) > 10 * min(values)
    fig.update_xaxes(type="log" if log_x else "linear", tickformat="~s" if si else "~g",
                     range=padded(values, log_x) if values else None, dtick=1 if log_x else None)
    fig.update_yaxes(tickformat=".0%", range=padded([float(v) for v in usable[y]], False, 0.25))
    return fig


def padded(values: list[float], log: bool, top: float = 0.15) -> list[float]:
    """An axis range with room around the points for their labels (log axes: in decades)."""
    if log:
        values = [math.log10(v) for v in values]
    low, high = min(values), max(values)
    span = high - low or abs(high) * 0.5 or 1.0
    return [low - 0.15 * span, high + top * span]


def per_class_figure(frame: pd.DataFrame, metric: str, runs: Sequence[dict],
                     colors: dict[str, str]) -> go.Figure:
    """Grouped bars: per class, one bar per run (core.analysis.compare.per_class_comparison)."""
    fig = go.Figure()
    for run in runs:
        own = frame[frame["run_id"] == run["run_id"]]
        fig.add_trace(go.Bar(x=[safe(c) for c in own["class"]], y=own[metric],
                             name=safe(run["name"]), marker_color=colors[run["run_id"]]))
    label = "F1" if metric == "f1" else "accuracy (recall)"
    base_layout(fig, f"Per-class {label} (test split)", "class", label)
    fig.update_layout(barmode="group", hovermode="x unified")
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_xaxes(type="category")
    return fig


def difference_figure(diff: np.ndarray, classes: Sequence[str], title: str) -> go.Figure:
    """A row-normalised confusion difference: blue where the second run has more, red less."""
    names = [safe(c) for c in classes]
    limit = max(0.05, float(np.abs(diff).max())) if diff.size else 1.0
    fig = go.Figure(go.Heatmap(
        z=diff, x=names, y=names, colorscale="RdBu", zmid=0, zmin=-limit, zmax=limit,
        texttemplate="%{z:+.0%}" if len(classes) <= MATRIX_TEXT_UP_TO else None,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z:+.1%} of the class<extra></extra>",
        colorbar={"tickformat": "+.0%"}))
    matrix_axes(fig, names)
    return base_layout(fig, safe(title), "predicted", "true", height=matrix_size(len(classes)))


def clickable_confusion(matrix: np.ndarray, classes: Sequence[str], title: str,
                        picked: tuple[int, int] | None = None) -> go.Figure:
    """The confusion heatmap with an invisible marker on every cell: Plotly heatmaps send no
    selection events, markers do, so a click reports the cell as customdata [true, predicted]."""
    fig = confusion_figure(matrix, classes, title)
    names = [safe(c) for c in classes]
    n = len(classes)
    cells = [(t, p) for t in range(n) for p in range(n)]
    fig.add_trace(go.Scatter(
        x=[names[p] for _, p in cells], y=[names[t] for t, _ in cells], mode="markers",
        customdata=[[t, p] for t, p in cells], showlegend=False,
        marker={"size": max(12, min(60, 500 // max(n, 1))), "symbol": "square",
                "color": "rgba(0,0,0,0)"},
        selected={"marker": {"opacity": 1}}, unselected={"marker": {"opacity": 1}},
        hovertemplate="true %{y}<br>predicted %{x}<br>click to see these images<extra></extra>"))
    if picked:
        fig.add_shape(type="rect", x0=picked[1] - 0.5, x1=picked[1] + 0.5, y0=picked[0] - 0.5,
                      y1=picked[0] + 0.5, line={"color": "#dc2626", "width": 3})
    fig.update_layout(hovermode="closest", clickmode="event+select", dragmode=False)
    return fig


def parallel_figure(frame: pd.DataFrame, target: str, label: str) -> go.Figure:
    """Parallel coordinates over compare.hyperparameter_frame, coloured by the target."""
    frame = frame.dropna(subset=[target])
    dimensions = []
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            categories = list(values.cat.categories)
            dimensions.append({"label": safe(column), "values": values.cat.codes,
                               "tickvals": list(range(len(categories))),
                               "ticktext": [safe(c)[:18] for c in categories]})
        else:
            dimensions.append({"label": safe(label if column == target else column),
                               "values": values.astype(float)})
    fig = go.Figure(go.Parcoords(
        line={"color": frame[target].astype(float), "colorscale": "Viridis", "showscale": True,
              "colorbar": {"tickformat": ".0%", "title": {"text": safe(label)}}},
        dimensions=dimensions))
    base_layout(fig, f"Hyperparameters → {safe(label)}", "", "", height=380)
    fig.update_layout(margin={"l": 110, "r": 60, "t": 80, "b": 30})
    return fig


def sweep_figure(summary: pd.DataFrame) -> go.Figure:
    """Mean test accuracy of each configuration with ± one std over seeds, best first."""
    rows = summary.dropna(subset=["test_acc_mean"])
    errors = [0 if math.isnan(s) else s for s in rows["test_acc_std"]]
    fig = go.Figure(go.Bar(
        x=rows["test_acc_mean"], y=[safe(c) for c in rows["configuration"]], orientation="h",
        error_x={"type": "data", "array": errors, "visible": True},
        marker_color="#4e79a7", text=[f"{m:.1%}" for m in rows["test_acc_mean"]],
        textposition="inside", insidetextanchor="start"))
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(range=[0, 1.05], tickformat=".0%")
    base_layout(fig, "Test accuracy by configuration (mean ± std over seeds)", "test accuracy",
                "", height=max(220, 40 * len(rows) + 120))
    fig.update_layout(hovermode="closest")
    return fig
