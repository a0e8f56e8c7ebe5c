"""The Datasets page's import notices: each import the background worker runs or ran
(core.runs.imports), with its progress, time left and a Cancel button while it runs, and what
it kept, or why it failed or stopped, until the notice is closed.

While an import runs, only this panel is redrawn (a fragment polling the store), so the
uploaders and forms below are never re-rendered by the polling."""

from __future__ import annotations

import streamlit as st

from core.runs.imports import (
    ACTIVE_IMPORTS,
    cancel_import,
    dismiss_import,
    keep_imports_moving,
    seconds_left,
)
from pages.ui.common import MISSING, duration, plain, store
from pages.ui.dataset_layout import layout_facts

POLL_S = 1.0  # seconds between two looks at a running import
ANNOUNCED = "imports_announced"  # session key: completed imports whose dataset was selected


def import_notices() -> None:
    """Draw the notices; poll while an import is queued or running."""
    jobs = keep_imports_moving(store())
    select_new_datasets(jobs)
    active = {job["job_id"] for job in jobs if job["status"] in ACTIVE_IMPORTS}
    if active:
        st.fragment(watch_imports, run_every=POLL_S)(active)
    else:
        draw_notices(jobs)


def watch_imports(watched: set[str]) -> None:
    jobs = keep_imports_moving(store())
    if watched - {job["job_id"] for job in jobs if job["status"] in ACTIVE_IMPORTS}:
        st.rerun(scope="app")  # one ended: the whole page shows its dataset (or its error)
    draw_notices(jobs)


def select_new_datasets(jobs: list[dict]) -> None:
    """A dataset an import has just made becomes the one shown below (once per import)."""
    announced: set[str] = st.session_state.setdefault(ANNOUNCED, set())
    for job in reversed(jobs):  # oldest first: the newest one ends up selected
        if job["status"] == "completed" and job["job_id"] not in announced:
            announced.add(job["job_id"])
            st.session_state["dataset_pick"] = job["name"]


def draw_notices(jobs: list[dict]) -> None:
    for job in jobs:
        cols = st.columns([12, 2], vertical_alignment="center")
        with cols[0]:
            notice(job)
        job_id = job["job_id"]
        if job["status"] in ACTIVE_IMPORTS:
            cols[1].button("Cancel", key=f"import_cancel_{job_id}", on_click=cancel_import,
                           args=(job_id,), icon=":material/cancel:")
        else:
            cols[1].button("Close", key=f"import_close_{job_id}", on_click=dismiss_import,
                           args=(job_id,), type="tertiary", icon=":material/close:")
        if job["status"] == "completed" and job["summary"].get("dropped"):
            st.dataframe(job["summary"]["dropped"], hide_index=True, width="stretch",
                         column_config={"file": "File", "reason": "Why it was dropped"},
                         placeholder=MISSING)


def notice(job: dict) -> None:
    name, status = plain(job["name"]), job["status"]
    if status == "queued":
        st.info(f"Import of {name} is waiting for the import worker to start…",
                icon=":material/hourglass_top:")
    elif status == "running":
        done, total = job["done"], job["total"]
        left = seconds_left(job)
        text = f"Importing {name}: {done}/{total} files" if total else f"Importing {name}…"
        st.progress(min(1.0, done / total) if total else 0.0,
                    text=text + (f", about {duration(left)} left" if left is not None else ""))
    elif status == "completed":
        summary = job["summary"]
        dropped = summary.get("dropped") or []
        st.success(f"Imported {name}: {summary.get('kept', 0)} images in "
                   f"{len(summary.get('classes', []))} classes"
                   + (f"; dropped {len(dropped)} file(s), listed below." if dropped else "."),
                   icon=":material/check_circle:")
        layout_facts(summary.get("layout", ""), summary.get("notes") or [])
        groups = summary.get("duplicates") or []
        if groups:
            st.caption(f"{len(groups)} group(s) of duplicate images: see Duplicates under the "
                       "dataset below.")
    elif status == "cancelled":
        st.warning(f"The import of {name} was cancelled; no dataset was made.",
                   icon=":material/cancel:")
    else:  # failed, interrupted
        st.error(f"The import of {name} did not finish: {plain(job['error'] or status)}",
                 icon=":material/error:")
