"""A run's live view: progress with ETA, Plotly curves, throughput, GPU, the log tail.

While the run is queued or running the view is a fragment re-run about once a second; each
pass asks the store only for rows from the last step drawn (pages.ui.common.metric_log).
"""

from __future__ import annotations

import streamlit as st

from core.store import Store
from pages.ui.charts import TRAIN, VAL, Trace, line_figure
from pages.ui.common import (
    ACTIVE,
    count,
    duration,
    log_tail,
    metric_log,
    pct,
    plain,
    run_seconds,
    store,
)
from pages.ui.data_fit import imbalance_result
from pages.ui.metric_log import MetricLog

POLL_SECONDS = 1.0


def progress_bar(run: dict, log: MetricLog) -> None:
    epochs = run["config"].get("epochs") or 1
    done = min(float(epochs), max(log.progress_epoch(), float(run["epoch"] or 0)))
    text = f"Epoch {done:.1f} of {epochs}" + steps_text(log, done, epochs)
    if run["status"] == "running":
        speed = log.epochs_per_second(run.get("started_at") or 0.0)
        eta = (epochs - done) / speed if speed else None
        text += f" · about {duration(eta)} left" if eta is not None else " · estimating time left…"
    elif run["status"] == "queued":
        text = "Waiting for the worker to start this run…"
    st.progress(min(1.0, done / epochs), text=text)


def steps_text(log: MetricLog, done: float, epochs: int) -> str:
    """" · step 1,234 of 8,430", when the run recorded its steps per epoch."""
    per_epoch = log.latest("steps_per_epoch")
    if not per_epoch:
        return ""
    return f" · step {round(done * per_epoch):,} of {round(epochs * per_epoch):,}"


def headline(run: dict, log: MetricLog) -> None:
    cols = st.columns(5)
    cols[0].metric("Train loss", fmt(log.latest("loss"), "{:.4f}"))
    cols[1].metric("Val accuracy", pct(log.latest("epoch/val_acc")),
                   help=f"best {pct(run['best_val_acc'])}")
    cols[2].metric("Images / s", fmt(log.latest("images_per_s"), "{:,.0f}"))
    cols[3].metric("Learning rate", fmt(log.latest("lr"), "{:.3g}"))
    cols[4].metric("Elapsed", duration(run_seconds(run)))
    gpu = log.latest("gpu_mem_gb")
    if gpu is not None:
        st.caption(f"GPU memory (peak allocated): {gpu:.2f} GiB" + gpu_utilisation())


def fmt(value: float | None, pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def gpu_utilisation() -> str:
    """Utilisation of the first GPU as the driver reports it, when it can be read."""
    try:
        import torch

        if torch.cuda.is_available():
            return f" · GPU utilisation {torch.cuda.utilization()}%"
        return ""
    except Exception:  # noqa: BLE001  (pynvml missing or no driver: show nothing)
        return ""


def curves(log: MetricLog, x: str) -> None:
    x_title = "step" if x == "step" else "epoch"
    loss = line_figure([
        Trace("train (per step)", *log.series("loss", x), width=1, opacity=0.4, colour=TRAIN),
        Trace("train (epoch)", *log.series("epoch/train_loss", x), mode="lines+markers",
              colour=TRAIN),
        Trace("validation", *log.series("epoch/val_loss", x), mode="lines+markers", colour=VAL),
    ], "Loss", x_title, "loss")
    acc = line_figure([
        Trace("train", *log.series("epoch/train_acc", x), mode="lines+markers", colour=TRAIN),
        Trace("validation", *log.series("epoch/val_acc", x), mode="lines+markers", colour=VAL),
        Trace("validation top-5", *log.series("epoch/val_top5", x), mode="lines+markers",
              dash="dot", colour=VAL),
    ], "Accuracy", x_title, "accuracy", percent=True)
    lr = line_figure([Trace("learning rate", *log.series("lr", x))], "Learning rate", x_title,
                     "learning rate")
    speed = line_figure([Trace("images / s", *log.series("images_per_s", x))], "Throughput",
                        x_title, "images / s")
    left, right = st.columns(2)
    left.plotly_chart(loss, key="live_loss")
    right.plotly_chart(acc, key="live_acc")
    left.plotly_chart(lr, key="live_lr")
    right.plotly_chart(speed, key="live_speed")
    if "gpu_mem_gb" in log.values:
        st.plotly_chart(line_figure([Trace("GPU memory", *log.series("gpu_mem_gb", x))],
                                    "GPU memory (GiB)", x_title, "GiB"), key="live_gpu")


def draw(run_id: str, db: Store, x: str, shown_status: str) -> None:
    """The run's progress, numbers, curves and log. `shown_status` is the status the rest of
    the page was drawn with; when the run moves on (starts, finishes) the page is redrawn."""
    run = db.get_run(run_id)
    if run is None:
        st.warning("This run no longer exists.")
        return
    if run["status"] != shown_status:
        st.rerun(scope="app")  # e.g. finished: redraw the page once, without polling
    log = metric_log(run, db)
    if run["status"] != "completed":  # a completed run shows its result summary instead
        progress_bar(run, log)
    if run["status"] in ACTIVE:
        headline(run, log)
    if log.values:
        curves(log, x)
    elif run["status"] in ACTIVE:
        st.info("The first numbers appear within seconds of the worker starting the run.")
    tail = log_tail(run_id)
    if tail:
        with st.expander("Log", expanded=run["status"] in ACTIVE):
            st.code(tail, language=None, wrap_lines=True)


@st.fragment(run_every=POLL_SECONDS)
def live_panel(run_id: str, x: str, shown_status: str) -> None:
    """Re-run about once a second while the run is queued or running."""
    draw(run_id, store(), x, shown_status)


def still_panel(run_id: str, x: str, shown_status: str) -> None:
    draw(run_id, store(), x, shown_status)


def result_summary(run: dict) -> None:
    """The finished run's result: test accuracy and the other numbers from run["summary"]."""
    summary = run.get("summary") or {}
    if run.get("error"):
        st.error(f"{run['status'].capitalize()}: {plain(run['error'])}")
    if not summary:
        return
    cols = st.columns(5)
    cols[0].metric("Test accuracy", pct(summary.get("test_acc")))
    best_epoch = summary.get("best_epoch")
    cols[1].metric("Best val accuracy", pct(summary.get("best_val_acc")),
                   help=None if best_epoch is None else f"at epoch {best_epoch}")
    cols[2].metric("Training time", duration(summary.get("train_seconds")))
    cols[3].metric("Images / s", fmt(summary.get("train_images_per_s"), "{:,.0f}"))
    cols[4].metric("Parameters", count(summary.get("params")),
                   help=f"{count(summary.get('flops'))} FLOPs per image")
    if summary.get("imported"):
        st.caption("Imported: trained elsewhere; the accuracies are its model card's.")
        return
    st.caption(f"Device: {plain(summary.get('device', '–'))} · image size "
               f"{summary.get('image_size', '–')} px · epochs {summary.get('epochs', '–')}")
    imbalance_result(summary)
