"""Plotly figures for the pages, and the thinning that keeps each trace small.

Pure functions (no Streamlit): data in, `go.Figure` out, so they are easy to test.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import plotly.graph_objects as go

MAX_POINTS = 2000  # per trace: more than a chart's width in pixels, few enough to stay fast
HEIGHT = 300
TRAIN, VAL, TEST = "#2563eb", "#f59e0b", "#10b981"
SPLIT_COLOURS = {"train": TRAIN, "val": VAL, "test": TEST}
PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#dc2626", "#7c3aed", "#0891b2", "#db2777",
           "#65a30d", "#ea580c", "#475569"]  # one colour per run on overlays


@dataclass
class Trace:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    mode: str = "lines"  # "lines", "markers" or "lines+markers"
    width: float = 2.0
    opacity: float = 1.0
    dash: str | None = None
    colour: str | None = None  # None: the next colour of PALETTE


def safe(text: object) -> str:
    """A name for Plotly, which reads a few HTML tags in its labels: shown as typed instead."""
    return html.escape(str(text), quote=False)


def thin(xs: Sequence[float], ys: Sequence[float],
         max_points: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most max_points evenly spaced points, the first and the last always kept."""
    n = len(xs)
    if n <= max_points:
        return list(xs), list(ys)
    if max_points < 2:
        return [xs[-1]], [ys[-1]]
    picks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [xs[i] for i in picks], [ys[i] for i in picks]


def base_layout(fig: go.Figure, title: str, x_title: str, y_title: str,
                height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 15}},
        height=height, margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
        xaxis_title=x_title, yaxis_title=y_title, hovermode="x unified",
        colorway=PALETTE,
    )
    return fig


def line_layout(fig: go.Figure, title: str, x_title: str, y_title: str, *, log_y: bool = False,
                percent: bool = False) -> go.Figure:
    """The common layout of a line chart, with a log or percent y axis when asked."""
    base_layout(fig, title, x_title, y_title)
    if log_y:
        fig.update_yaxes(type="log")
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def line_figure(traces: Sequence[Trace], title: str, x_title: str, y_title: str, *,
                log_y: bool = False, percent: bool = False) -> go.Figure:
    """Overlaid lines, each thinned to MAX_POINTS; traces without points are left out."""
    fig = go.Figure()
    for trace in traces:
        if not len(trace.xs):
            continue
        xs, ys = thin(trace.xs, trace.ys)
        fig.add_trace(go.Scatter(
            x=xs, y=ys, name=safe(trace.name), mode=trace.mode, opacity=trace.opacity,
            line={"width": trace.width, "dash": trace.dash, "color": trace.colour},
            marker={"size": 7, "color": trace.colour}))
    return line_layout(fig, title, x_title, y_title, log_y=log_y, percent=percent)


def balance_figure(class_split_counts: dict[str, dict[str, int]]) -> go.Figure:
    """Images per class, stacked by split."""
    classes = list(class_split_counts)
    fig = go.Figure()
    for split, colour in SPLIT_COLOURS.items():
        fig.add_trace(go.Bar(name=split, x=[safe(cls) for cls in classes], marker_color=colour,
                             y=[class_split_counts[cls].get(split, 0) for cls in classes]))
    fig.update_layout(barmode="stack")
    return base_layout(fig, "Class balance", "class", "images")


def lr_schedule_figure(points: Sequence[tuple[float, float]], schedule: str) -> go.Figure:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return line_figure([Trace("learning rate", xs, ys)], f"Learning-rate schedule ({schedule})",
                       "epoch", "learning rate")


def lr_find_figure(lrs: Sequence[float], losses: Sequence[float],
                   suggestion: float | None) -> go.Figure:
    """The LR range test: loss against learning rate (log axis), the suggestion marked."""
    fig = line_figure([Trace("loss", lrs, losses)], "LR range test", "learning rate", "loss")
    fig.update_xaxes(type="log")
    if suggestion:
        fig.add_vline(x=suggestion, line_dash="dash", line_color="#dc2626",
                      annotation_text=f"suggested {suggestion:.2g}")
    return fig


MUTED = "#9ca3af"  # grey: guesses shown for an image the model does not know


def top_k_figure(top: Sequence[dict], muted: bool = False) -> go.Figure:
    """Horizontal bars of class probabilities, the most likely on top; grey when `muted`."""
    labels = [safe(entry["label"]) for entry in reversed(top)]
    probs = [entry["prob"] for entry in reversed(top)]
    fig = go.Figure(go.Bar(x=probs, y=labels, orientation="h",
                           marker_color=MUTED if muted else "#2563eb",
                           text=[f"{p:.1%}" for p in probs], textposition="auto"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(type="category")
    base_layout(fig, "", "probability", "", height=max(160, 40 * len(top) + 60))
    fig.update_layout(margin={"t": 10}, hovermode="closest")
    return fig


MATRIX_MAX_PX = 920  # 20 classes at 36 px a cell, with room for the labels
MATRIX_TEXT_UP_TO = 20  # classes: the count in each cell up to here; beyond, on hover only
LABEL_CHARS = 14  # a longer class name is cut on the axis (whole on hover)


def matrix_size(classes: int) -> int:
    """The height of a confusion heatmap: about 36 px a cell, 320 to MATRIX_MAX_PX in all."""
    return max(320, min(MATRIX_MAX_PX, 36 * classes + 200))


def short_labels(names: Sequence[str]) -> list[str]:
    """The axis labels: a long name cut to LABEL_CHARS, unless that would make two alike
    ("class number 01", "class number 02"), when every name stays whole."""
    cut = [name if len(name) <= LABEL_CHARS else name[:LABEL_CHARS - 1] + "…" for name in names]
    return cut if len(set(cut)) == len(cut) else list(names)


def matrix_axes(fig: go.Figure, names: Sequence[str]) -> go.Figure:
    """Every class labelled on both axes (Plotly skips every other one once they crowd),
    slanted on the x axis past a few, the numbers in the cells in a size that fits them."""
    n = len(names)
    font = 12 if n <= 10 else 10 if n <= 15 else 9
    ticks = {"type": "category", "tickmode": "array", "tickvals": list(names),
             "ticktext": short_labels(names), "tickfont": {"size": font},
             "automargin": True}
    fig.update_xaxes(**ticks, tickangle=0 if n <= 6 else -45)
    fig.update_yaxes(**ticks, autorange="reversed")
    fig.update_traces(textfont={"size": 13 if n <= 10 else 11 if n <= 15 else 9},
                      selector={"type": "heatmap"})
    return fig


def confusion_figure(matrix: Sequence[Sequence[float]], classes: Sequence[str],
                     title: str = "Confusion matrix (test split)") -> go.Figure:
    names = [safe(cls) for cls in classes]
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues",
                               hovertemplate="true %{y}<br>predicted %{x}<br>%{z}<extra></extra>",
                               texttemplate="%{z}" if len(classes) <= MATRIX_TEXT_UP_TO
                               else None))
    matrix_axes(fig, names)
    return base_layout(fig, safe(title), "predicted", "true", height=matrix_size(len(classes)))


def matrices_per_row(classes: int) -> int:
    """How many confusion matrices fit side by side and stay legible: three small ones, two
    up to 12 classes, one (the page's width) beyond."""
    return 3 if classes <= 6 else 2 if classes <= 12 else 1


def scatter_figure(points: Sequence[dict], x_key: str, y_key: str, title: str,
                   x_title: str, y_title: str, *, log_x: bool = False) -> go.Figure:
    """One labelled marker per run (e.g. accuracy against parameters)."""
    usable = [p for p in points if p.get(x_key) is not None and p.get(y_key) is not None]
    fig = go.Figure(go.Scatter(
        x=[p[x_key] for p in usable], y=[p[y_key] for p in usable], mode="markers+text",
        text=[safe(p["name"]) for p in usable], textposition="top center", marker={"size": 11},
        cliponaxis=False))
    base_layout(fig, title, x_title, y_title)
    fig.update_layout(hovermode="closest", margin={"l": 60, "r": 60})
    fig.update_xaxes(type="log" if log_x else "linear", tickformat="~s")
    return fig


def reliability_figure(before: dict, after: dict, title: str) -> go.Figure:
    """Accuracy against confidence per bin (core.training.calibration.reliability_bins),
    before and after temperature scaling; a calibrated model's points lie on the diagonal."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated",
                               line={"dash": "dot", "color": MUTED}, hoverinfo="skip"))
    for name, table, colour in (("before", before, MUTED), ("after (temperature)", after,
                                                           "#2563eb")):
        points = [(c, a, n) for c, a, n in zip(table["confidence"], table["accuracy"],
                                               table["count"], strict=True) if n]
        fig.add_trace(go.Scatter(
            x=[c for c, _, _ in points], y=[a for _, a, _ in points], mode="lines+markers",
            name=name, line={"color": colour}, customdata=[n for _, _, n in points],
            hovertemplate="confidence %{x:.1%}<br>accuracy %{y:.1%}<br>%{customdata} images"
                          "<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    base_layout(fig, safe(title), "confidence (top class)", "accuracy", height=360)
    fig.update_layout(hovermode="closest")
    return fig
