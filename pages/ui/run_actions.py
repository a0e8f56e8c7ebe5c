"""The Runs page's buttons for one run: stop, resume, re-run exactly, clone and edit, error
analysis, rename, delete."""

from __future__ import annotations

import streamlit as st

from core.runs import queue
from core.runs.card import clone_config, rerun_config
from core.runs.record import delete_run, rename_run
from core.store import Store
from pages.ui.common import (
    ACTIVE,
    PAGES,
    USER_ERRORS,
    confirm_delete,
    has_model,
    plain,
    switch_to,
    user_errors,
)


def stop_button(run: dict, db: Store, bar) -> None:
    if run["status"] in ACTIVE and bar.button(
            "Stop", key="run_stop", icon=":material/stop:",
            help="Stops after the current step; the best model is kept"):
        with user_errors("stop the run"):
            queue.stop(run["run_id"], db)
            st.toast("Stop requested; the run ends within a few seconds.")
            st.rerun()


def resume_button(run: dict, db: Store, bar) -> None:
    if run["status"] in queue.RESUMABLE and bar.button(
            "Resume", key="run_resume", icon=":material/play_arrow:",
            help="Continues from the last finished epoch"):
        with user_errors("resume the run"):
            queue.resume(run["run_id"], db)
            st.rerun()


def rerun_button(run: dict, db: Store, bar) -> None:
    bar.button("Re-run exactly", key="run_rerun", icon=":material/replay:",
                       on_click=queue_rerun, args=(run, db),
                       help="Queue a new run with this exact config: same data, seed and "
                            "settings")
    if "rerun_error" in st.session_state:
        st.error(st.session_state.pop("rerun_error"), icon=":material/error:")


def queue_rerun(run: dict, db: Store) -> None:
    """A callback, so the new run can become the one shown (the run picker is drawn above)."""
    try:
        st.session_state["run_pick"] = queue.submit(rerun_config(run), db)
        st.toast(f"Queued {plain(run['name'])}-rerun with the same config")
    except USER_ERRORS as error:
        st.session_state["rerun_error"] = f"Could not re-run: {plain(error)}"


def clone_button(run: dict, bar) -> None:
    if bar.button("Clone and edit", key="run_clone", icon=":material/content_copy:",
                          help="Open the Train form with these settings"):
        with user_errors("clone the run"):
            st.session_state["clone_config"] = clone_config(run).to_dict()
            switch_to(PAGES["train"])


def analyse_button(run: dict, bar) -> None:
    if run["status"] not in ACTIVE and has_model(run) and bar.button(
            "Error analysis", key="run_mistakes", icon=":material/troubleshoot:",
            help="The validation images this model gets wrong"):
        st.session_state["mistakes_run"] = run["run_id"]
        switch_to(PAGES["mistakes"])


def rename_control(run: dict, db: Store, bar) -> None:
    with bar.popover("Rename", icon=":material/edit:"):
        new_name = st.text_input("New name", value=run["name"], max_chars=128,
                                 key=f"rename_{run['run_id']}")
        if st.button("Save name", key="run_rename_save"):
            new_name = new_name.strip()
            if not new_name:
                st.error("Type a name: it cannot be empty.")
            else:
                with user_errors("rename the run"):
                    rename_run(run["run_id"], new_name, db)
                    st.rerun()


def delete_control(run: dict, db: Store, bar) -> None:
    if run["status"] in ACTIVE:
        return
    if st.session_state.get("confirm_delete_run") != run["run_id"]:
        if bar.button("Delete…", key="run_delete", icon=":material/delete:"):
            st.session_state["confirm_delete_run"] = run["run_id"]
            st.rerun()
        return
    confirm_delete("run", run["name"],
                   f"Delete run {plain(repr(run['name']))} with its metrics and trained model? "
                   "This cannot be undone.", lambda: delete_run(run["run_id"], db))


def action_bar(run: dict, db: Store) -> None:
    """The buttons that apply to the run's status, left to right without gaps."""
    bar = st.container(horizontal=True)  # each action that applies takes the next place
    stop_button(run, db, bar)
    resume_button(run, db, bar)
    rerun_button(run, db, bar)
    clone_button(run, bar)
    analyse_button(run, bar)
    rename_control(run, db, bar)
    delete_control(run, db, bar)
