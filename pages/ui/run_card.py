"""A run's card on the Runs page: dataset (name, content hash, split), seed, environment and the
full config — what it takes to understand and reproduce the run (core.runs.card)."""

from __future__ import annotations

import datetime

import streamlit as st

from core.runs.card import NOT_RECORDED, run_card
from pages.ui.common import plain, store, user_errors

ENVIRONMENT = {"torch": "PyTorch", "cuda": "CUDA", "device": "device", "gpu": "GPU",
               "python": "Python", "cpu_threads": "CPU threads"}


def when(stamp: float | None) -> str:
    return "–" if not stamp else datetime.datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M")


def dataset_lines(dataset: dict) -> list[str]:
    splits = dataset["splits"]
    split_text = NOT_RECORDED if splits == NOT_RECORDED else \
        " / ".join(f"{splits.get(name, 0)} {name}" for name in ("train", "val", "test"))
    lines = [f"**Dataset:** {plain(dataset['name'])}",
             f"**Content hash:** `{dataset['content_hash']}`",
             f"**Split:** {split_text} (split seed {dataset['split_seed']})",
             f"**Image size:** {dataset['image_size']} px"]
    if dataset["changed"]:
        lines.append(f":orange[The dataset changed since this run trained on it (now "
                     f"`{dataset['current_hash']}`).]")
    elif dataset["current_hash"] == "dataset deleted":
        lines.append(":orange[The dataset has been deleted since.]")
    return lines


def environment_lines(environment: dict | str) -> list[str]:
    if not isinstance(environment, dict):
        return [f"**Environment:** {environment} (the run finished before it was recorded)"]
    return [f"**{label}:** {plain(environment[key])}" for key, label in ENVIRONMENT.items()
            if environment.get(key) is not None] or ["**Environment:** " + NOT_RECORDED]


def run_card_panel(run: dict) -> None:
    """An expander with the card; the Re-run and Clone buttons sit in the action bar above."""
    with (st.expander("Run card: data, seed, environment, full config", icon=":material/badge:"),
          user_errors("read the run card")):
        card = run_card(run["run_id"], store())
        left, middle, right = st.columns(3)
        left.markdown("  \n".join(dataset_lines(card["dataset"])))
        middle.markdown("  \n".join([
            f"**Seed:** {card['seed']}",
            f"**Group:** {plain(card['group']) if card['group'] else '–'}",
            f"**Recipe:** {plain(card['recipe']) if card['recipe'] else '–'}",
            f"**Created:** {when(card['created_at'])}",
            f"**Started:** {when(card['started_at'])}",
            f"**Finished:** {when(card['finished_at'])}"]))
        right.markdown("  \n".join(environment_lines(card["environment"])))
        st.caption("Full config (Re-run exactly queues it unchanged; Clone and edit opens it in "
                   "the Train form):")
        st.json(card["config"], expanded=1)
