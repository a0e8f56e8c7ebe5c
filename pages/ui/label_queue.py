"""The Error analysis page's "Likely label errors": the search as a background job (queued,
its fold and epoch while it runs, Cancel; why it failed), then the queue, worst first, each image
with its given and suggested label, its score and three choices (accept the suggestion, keep,
drop), and saving the choices as a new dataset version (the original stays as it is)."""

from __future__ import annotations

import hashlib

import streamlit as st

from core.analysis.error_analysis import save_dataset_version
from core.analysis.label_jobs import (
    ACCEPT,
    DROP,
    KEEP,
    label_jobs,
    progress_text,
    queue_edits,
    saved_label_issues,
    submit_label_issues,
)
from core.data.catalog import free_version_name
from core.data.dataset import Dataset
from core.runs.imports import ACTIVE_IMPORTS, cancel_import, dismiss_import, seconds_left
from pages.ui.common import duration, plain, store, user_errors

POLL_S = 1.0
COLUMNS = 4
CHOICES = [ACCEPT, KEEP, DROP]
SAVED = "labels_saved"  # session: (dataset, the version saved from it)


def decisions(dataset: str) -> dict[int, str]:
    """item index → accept or drop (keep is not stored), for one dataset (this session)."""
    return st.session_state.setdefault("label_decisions", {}).setdefault(dataset, {})


def choice_key(dataset: str, index: int) -> str:
    return f"label_choice_{index}_{hashlib.sha256(dataset.encode()).hexdigest()[:12]}"


def set_choice(dataset: str, index: int) -> None:
    choice = st.session_state[choice_key(dataset, index)]
    own = decisions(dataset)
    if choice in (ACCEPT, DROP):
        own[index] = choice
    else:
        own.pop(index, None)


def label_errors(dataset: Dataset) -> None:
    """The search's state for this dataset, then its queue once there is a result."""
    jobs = label_jobs(dataset.name, store())
    active = [job for job in jobs if job["status"] in ACTIVE_IMPORTS]
    if active:
        st.fragment(watch_search, run_every=POLL_S)(dataset.name, active[0]["job_id"])
    for job in jobs:
        if job["status"] not in ACTIVE_IMPORTS:
            ended_notice(job)
    result = saved_label_issues(dataset)
    if result is None:
        if not active:
            st.info("No search for likely label errors in this dataset yet. It trains a small "
                    "model on all but one part of the images, predicts that part, and repeats "
                    "for every part, so every image is judged by a model that never saw it.",
                    icon=":material/search:")
            find_form(dataset, "Find likely label errors")
        return
    queue(dataset, result)
    if not active:
        with st.expander("Search again"):
            find_form(dataset, "Search again")


def find_form(dataset: Dataset, label: str) -> None:
    cols = st.columns([1, 1, 2])
    folds = cols[0].number_input("Folds", 2, 10, 5, key="labels_folds",
                                 help="Each image is predicted by a model trained on the "
                                      "other folds.")
    epochs = cols[1].number_input("Epochs per fold", 1, 50, 6, key="labels_epochs")
    cols[2].markdown("&nbsp;")
    if cols[2].button(label, type="primary", key="labels_find", icon=":material/search:"):
        with user_errors("start the search"):
            submit_label_issues(dataset.name, folds=int(folds), epochs=int(epochs))
            st.rerun()


def watch_search(name: str, job_id: str) -> None:
    job = store().get_import(job_id)
    if job is None or job["status"] not in ACTIVE_IMPORTS:
        st.rerun(scope="app")  # it ended: the whole page shows its queue (or why not)
        return
    label_jobs(name, store())  # keeps it moving: a dead worker's job ends, a worker starts
    cols = st.columns([12, 2], vertical_alignment="center")
    with cols[0]:
        if job["status"] == "queued":
            st.info("The search for likely label errors is waiting for the background worker…",
                    icon=":material/hourglass_top:")
        else:
            left = seconds_left(job)
            fraction = min(1.0, job["done"] / job["total"]) if job["total"] else 0.0
            st.progress(fraction, text=f"Looking for likely label errors: {progress_text(job)}"
                        + (f", about {duration(left)} left" if left is not None else ""))
    cols[1].button("Cancel", key=f"labels_cancel_{job_id}", on_click=cancel_import,
                   args=(job_id,), icon=":material/cancel:")


def ended_notice(job: dict) -> None:
    cols = st.columns([12, 2], vertical_alignment="center")
    status = job["status"]
    with cols[0]:
        if status == "completed":
            summary = job["summary"]
            st.success(f"The search finished: {summary.get('issues', 0)} likely label errors "
                       f"in {summary.get('images', 0)} images.", icon=":material/check_circle:")
        elif status == "cancelled":
            st.warning("The search for likely label errors was cancelled.",
                       icon=":material/cancel:")
        else:  # failed, interrupted
            st.error(f"The search for likely label errors failed: "
                     f"{plain(job['error'] or status)}", icon=":material/error:")
    cols[1].button("Close", key=f"labels_close_{job['job_id']}", on_click=dismiss_import,
                   args=(job["job_id"],), type="tertiary", icon=":material/close:")


def queue(dataset: Dataset, result: dict) -> None:
    issues = result["issues"]
    st.caption(f"{len(issues)} likely label errors in {result['images']} images, worst first "
               f"({result['folds']}-fold predictions of {plain(result['model'])}, out-of-fold "
               f"accuracy {result['out_of_fold_acc']:.1%}). The score is how well the given "
               "label fits: lower is more likely wrong.")
    saved_notice(dataset)
    if not issues:
        st.success("No likely label errors found.", icon=":material/check_circle:")
        return
    limit = int(st.number_input("Images at most", 4, 400, 24, 4, key="labels_limit"))
    own = decisions(dataset.name)
    shown = issues[:limit]
    for start in range(0, len(shown), COLUMNS):
        for column, issue in zip(st.columns(COLUMNS), shown[start:start + COLUMNS],
                                 strict=False):
            queue_item(column, dataset, issue, own)
    save_choices(dataset, result)


def queue_item(column, dataset: Dataset, issue: dict, own: dict[int, str]) -> None:
    index = int(issue["index"])
    column.image(str(dataset.folder / issue["file"]), width=96)
    column.caption(f"given **{plain(issue['given'])}** → suggested "
                   f"**{plain(issue['suggested'])}** · score {issue['score']:.3f}")
    key = choice_key(dataset.name, index)
    if key not in st.session_state:
        st.session_state[key] = own.get(index, KEEP)
    column.radio("Choice", CHOICES, key=key, horizontal=True, label_visibility="collapsed",
                 format_func=lambda choice: {ACCEPT: "accept", KEEP: "keep",
                                             DROP: "drop"}[choice],
                 on_change=set_choice, args=(dataset.name, index))


def saved_notice(dataset: Dataset) -> None:
    source, saved = st.session_state.get(SAVED) or (None, None)
    if source == dataset.name:
        st.success(f"Saved dataset {plain(saved)}. The original {plain(dataset.name)} is "
                   "unchanged; train on the new version to see whether the fixes help.",
                   icon=":material/check_circle:")


def save_choices(dataset: Dataset, result: dict) -> None:
    drop, relabel = queue_edits(result, decisions(dataset.name))
    if not drop and not relabel:
        st.caption("Choose *accept* (take the suggested label) or *drop* (leave the image out) "
                   "above, then save a new version of the dataset.")
        return
    cols = st.columns([2, 2, 1])
    name = cols[0].text_input("Name of the new version", value=free_version_name(dataset.name),
                              key=f"labels_version_{dataset.name}", max_chars=64)
    cols[1].markdown("&nbsp;")
    if cols[1].button(f"Save new version ({len(relabel)} relabelled, {len(drop)} dropped)",
                      type="primary", key="labels_save", icon=":material/save:"):
        with user_errors("save the new version"), st.spinner("Writing the new dataset…"):
            version = save_dataset_version(dataset.name, name.strip(), drop, relabel)
            st.session_state[SAVED] = (dataset.name, version.name)
            st.session_state.pop(f"labels_version_{dataset.name}", None)
            clear_choices(dataset.name)
    cols[2].markdown("&nbsp;")
    if cols[2].button("Clear choices", key="labels_clear"):
        clear_choices(dataset.name)


def clear_choices(dataset: str) -> None:
    for index in decisions(dataset):
        st.session_state.pop(choice_key(dataset, index), None)
    st.session_state["label_decisions"].pop(dataset, None)
    st.rerun()


def pick_dataset(names: list[str], preferred: str | None) -> str:
    """The dataset whose labels are checked: the one chosen before, else the run's."""
    if st.session_state.get("labels_data") not in names:
        st.session_state["labels_data"] = preferred if preferred in names else names[0]
    return st.selectbox("Dataset", names, key="labels_data")
