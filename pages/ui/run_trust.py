"""A finished run's "how far to trust its answers" panel on the Runs page: the calibration
temperature, the ECE before and after it, the reliability diagram, and the unknown-input
detector's threshold (core.training.after_fit wrote them)."""

from __future__ import annotations

import streamlit as st

from core.runs.card import calibration_record
from pages.ui.charts import reliability_figure
from pages.ui.common import pct

METHODS = {"msp": "max-softmax after the temperature", "energy": "the energy score",
           "knn": "distance to the nearest training images' features (kNN)"}


def trust_panel(run: dict) -> None:
    record = calibration_record(run["run_id"])
    if record is None:
        return
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**How far to trust its answers**")
        lines = [f"Temperature **{record['temperature']:.3f}**: every probability shown is "
                 "softmax(logits / T), fitted on the validation split."]
        if record.get("ece_before") is not None:
            lines.append(f"Expected calibration error on the {record['split']} split "
                         f"({record['bins']} bins): {pct(record['ece_before'])} before, "
                         f"**{pct(record['ece_after'])}** after.")
        lines += detector_lines(record.get("unknown"))
        st.markdown("\n".join(f"- {line}" for line in lines))
    right.plotly_chart(reliability_figure(
        record["reliability"]["before"], record["reliability"]["after"],
        f"Reliability ({record['split']} split)"), key="run_reliability")


def detector_lines(detector: dict | None) -> list[str]:
    if not detector:
        return []
    chosen = detector["candidates"][detector["method"]]
    score = METHODS.get(detector["method"], detector["method"])
    line = (f"“None of the classes I know” when {score} is below "
            f"{detector['threshold']:.3f}: {pct(chosen['val_answered'])} of validation images "
            "answered")
    if chosen.get("test_answered") is not None:
        line += f", {pct(chosen['test_answered'])} of test images"
    return [line + "."]
