"""Runs: every run in a sortable table (tick several to compare them), and one run's live
view with its controls and its run card."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import streamlit as st

from core.analysis.compare import run_confusion
from core.runs.card import recipe_text
from core.runs.queue import keep_queue_moving
from pages.ui.charts import confusion_figure
from pages.ui.common import (
    ACTIVE,
    ICONS,
    MISSING,
    PAGES,
    active_runs,
    plain,
    run_label,
    run_seconds,
    store,
    switch_to,
)
from pages.ui.live import live_panel, result_summary, still_panel
from pages.ui.run_actions import action_bar
from pages.ui.run_card import run_card_panel
from pages.ui.run_trust import trust_panel

TABLE_POLL_SECONDS = 2.0


def table_panel(runs: list[dict]) -> None:
    """The table of every run; while any run is active it refreshes every few seconds."""
    if active_runs(runs):
        live_table()
    else:
        runs_table(runs)


@st.fragment(run_every=TABLE_POLL_SECONDS)
def live_table() -> None:
    if st.session_state.pop("table_picked", False):
        st.rerun(scope="app")  # a row was clicked: show that run below
    runs = store().list_runs()
    runs_table(runs)
    if not active_runs(runs):
        st.rerun(scope="app")  # nothing left to watch: stop polling


def run_columns() -> dict:
    """Widths that keep the whole table inside the page beside the sidebar (about 800 px, a
    1280 px window), short titles with the long form on hover, and formats."""
    number, text = st.column_config.NumberColumn, st.column_config.TextColumn
    percent = "%.1f %%"
    return {"name": text(width=140), "status": text(width=75), "model": text(width=80),
            "data": text(width=75),
            "best val acc": number("best val", format=percent, width=62,
                                   help="best validation accuracy"),
            "last val acc": number("last val", format=percent, width=62,
                                   help="validation accuracy of the last epoch"),
            "test acc": number("test", format=percent, width=55,
                               help="test accuracy of the best checkpoint"),
            "epochs": text(width=58),
            "duration (s)": number("time (s)", format="%.0f", width=62,
                                   help="wall time of the run, in seconds"),
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm", width=110)}


def runs_table(runs: list[dict]) -> None:
    st.session_state["runs_in_table"] = [run["run_id"] for run in runs]
    rows = [{
        "name": run["name"], "status": run["status"],
        "model": run["model"], "data": run["data"],
        "best val acc": pct100(run["best_val_acc"]), "last val acc": pct100(run["last_val_acc"]),
        "test acc": pct100(run["test_acc"]),
        "epochs": epochs_text(run),
        "duration (s)": run_seconds(run),
        "created": run["created_at"] * 1000,
    } for run in runs]
    event = st.dataframe(rows, hide_index=True, key="runs_table", on_select=pick_from_table,
                         selection_mode="multi-row", column_config=run_columns(),
                         placeholder=MISSING, width="stretch")
    compare_button([runs[row]["run_id"] for row in event["selection"]["rows"]
                    if row < len(runs)])


def compare_button(picked: list[str]) -> None:
    """Compare the ticked rows; the Compare page opens with exactly those runs."""
    label = f"Compare {len(picked)} selected" if picked else "Compare selected"
    if st.button(label, key="runs_compare", icon=ICONS["compare"], disabled=not picked,
                 help="Tick runs in the table (the box at the start of each row)"):
        st.session_state["compare_pick"] = picked
        switch_to(PAGES["compare"])


def epochs_text(run: dict) -> str:
    """"3/10"; "imported" for a model trained elsewhere (its config's one epoch is a stand-in)."""
    if (run.get("summary") or {}).get("imported"):
        return "imported"
    return f"{run['epoch']}/{run['config'].get('epochs', '?')}"


def pct100(value: float | None) -> float | None:
    return None if value is None else round(100 * value, 2)


def pick_from_table() -> None:
    """The row ticked last becomes the run shown below; all ticked rows can be compared."""
    rows = list(st.session_state["runs_table"]["selection"]["rows"])
    before = st.session_state.get("runs_ticked", [])
    st.session_state["runs_ticked"] = rows
    added = [row for row in rows if row not in before]
    runs = st.session_state.get("runs_in_table", [])
    if added and added[-1] < len(runs):
        st.session_state["run_pick"] = runs[added[-1]]
        st.session_state["table_picked"] = True


def per_class(run: dict) -> None:
    summary = run.get("summary") or {}
    rows = summary.get("per_class")
    if not rows:
        return
    left, right = st.columns([2, 3])
    left.markdown("**Per class (test split)**")
    three_places = st.column_config.NumberColumn(format="%.3f", width=75)
    left.dataframe(rows, hide_index=True, placeholder=MISSING, column_config=dict.fromkeys(
        ("accuracy", "precision", "f1"), three_places))
    if summary.get("confusion"):
        classes, matrix = run_confusion(run)
        right.plotly_chart(confusion_figure(matrix.tolist(), classes), key="run_confusion")


def run_view(run: dict) -> None:
    st.subheader(plain(run["name"]))  # a name the person chose: shown as typed, never as markup
    recipe = recipe_text(run["config"])
    st.caption(f"{plain(run['model'])} on {plain(run['data'])} · run id {run['run_id']} · "
               f"{run['status']}" + (f" · recipe {plain(recipe)}" if recipe else ""))
    db = store()
    action_bar(run, db)
    x = st.segmented_control("x axis", ["step", "epoch"], default="epoch", key="runs_x")
    if run["status"] in ACTIVE:
        live_panel(run["run_id"], x or "epoch", run["status"])
    else:
        result_summary(run)
        still_panel(run["run_id"], x or "epoch", run["status"])
        per_class(run)
        trust_panel(run)
    run_card_panel(run)


st.title("Runs")
all_runs = keep_queue_moving(store())
if not all_runs:
    st.info("No runs yet. Start one on the Train page; it appears here and updates live.")
    st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
else:
    ids = [run["run_id"] for run in all_runs]
    table_panel(all_runs)
    by_id = {run["run_id"]: run for run in all_runs}
    wanted = st.session_state.get("run_pick") or st.query_params.get("run_pick")
    st.session_state["run_pick"] = wanted if wanted in by_id else ids[0]
    picked = st.selectbox("Run", ids, key="run_pick", format_func=lambda i: run_label(by_id[i]),
                          bind="query-params")
    st.divider()
    run_view(by_id[picked])
