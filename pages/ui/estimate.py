"""The time estimate shown before a run starts (Train) or a sweep is queued (Sweep): the
model's FLOPs and a one-second probe of this device (core.training.estimate), with a warning
before a CPU run longer than ten minutes."""

from __future__ import annotations

import json
from dataclasses import asdict

import streamlit as st

from core.config import TrainConfig
from core.data.dataset import Dataset
from core.training.estimate import (
    LONG_CPU_SECONDS,
    Estimate,
    Probe,
    describe,
    duration_text,
    estimate_config,
    measure_model,
)
from pages.ui.common import plain

MAX_PROBED_MODELS = 8  # a sweep over more architectures is not probed one by one


@st.cache_data(max_entries=64, show_spinner="Measuring this device with the model…")
def probed(model: str, in_chans: int, num_classes: int, image_size: int, device: str,
           batch_size: int) -> tuple[float, dict | None]:
    """measure_model, remembered: `model` is a name or a layer spec as sorted JSON."""
    flops, probe = measure_model(json.loads(model) if model.startswith("{") else model,
                                 in_chans=in_chans, num_classes=num_classes,
                                 image_size=image_size, device=device, batch_size=batch_size)
    return flops, asdict(probe) if probe else None


def cached_measure(model: str | dict, **settings) -> tuple[float, Probe | None]:
    key = json.dumps(model, sort_keys=True) if isinstance(model, dict) else model
    flops, probe = probed(key, **settings)
    return flops, Probe(**probe) if probe else None


def estimate_for(config: TrainConfig, dataset: Dataset) -> Estimate | None:
    """The run's estimate, or None when its FLOPs cannot be counted."""
    return estimate_config(config, dataset, cached_measure)


def run_estimate(config: TrainConfig, dataset: Dataset) -> None:
    """One line before Start: about how long, on what; a warning past ten minutes on a CPU."""
    try:
        estimate = estimate_for(config, dataset)
    except ValueError as error:  # the model cannot take these images: said by the picker
        st.caption(f"No time estimate: {plain(error)}")
        return
    if estimate is None:
        st.caption("No time estimate: this model's FLOPs cannot be counted.")
        return
    text = f"Estimated time: {describe(estimate)}"
    if estimate.too_long_for_cpu:
        st.warning(f"{text}, longer than {LONG_CPU_SECONDS / 60:.0f} minutes: no GPU is "
                   "visible, so this run trains on the CPU. The cpu-quick recipe, fewer epochs "
                   "or a smaller image size make it shorter; or start it anyway.",
                   icon=":material/schedule:")
    elif estimate.on_cpu:
        st.info(f"{text} (no GPU is visible: it trains on the CPU).", icon=":material/schedule:")
    else:
        st.info(text + ".", icon=":material/schedule:")


def sweep_estimate(configs: list[TrainConfig], dataset: Dataset) -> None:
    """The sweep's total: its runs train one after another."""
    if len({config.model for config in configs}) > MAX_PROBED_MODELS:
        st.caption(f"No time estimate for more than {MAX_PROBED_MODELS} architectures at once.")
        return
    try:
        estimates = [estimate_for(config, dataset) for config in configs]
    except ValueError as error:
        st.caption(f"No time estimate: {plain(error)}")
        return
    known = [estimate for estimate in estimates if estimate is not None]
    if not known:
        return
    total = sum(estimate.seconds for estimate in known)
    where = "this CPU" if known[0].on_cpu else "this GPU"
    text = f"Estimated time for the sweep: about {duration_text(total)} on {where}"
    if len(known) < len(estimates):
        text += f" ({len(estimates) - len(known)} run(s) not counted)"
    if known[0].on_cpu and total > LONG_CPU_SECONDS:
        st.warning(text + f", longer than {LONG_CPU_SECONDS / 60:.0f} minutes on the CPU (no "
                   "GPU is visible). Fewer architectures, seeds or epochs, or a time budget "
                   "per run, make it shorter.", icon=":material/schedule:")
    else:
        st.info(text + ".", icon=":material/schedule:")
