"""Compare: any set of runs, each in one colour across every chart. What is most accurate,
what is fastest, what each confuses, and what differs in their settings."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import pandas as pd
import streamlit as st

from core.analysis.compare import config_diff, run_colors
from core.analysis.ranking import (
    accuracy_headline,
    accuracy_key,
    default_selection,
    leaders,
    ranked_by_accuracy,
    short_names,
)
from pages.ui.common import (
    ICONS,
    PAGES,
    duration,
    pct,
    plain,
    run_label,
    store,
)
from pages.ui.compare_breakdown import (
    confusion_section,
    confusion_sentence,
    downloads,
    measure_latency,
    parallel_section,
    per_class_section,
    tradeoff_section,
)
from pages.ui.compare_changes import compare_two, what_changed_section
from pages.ui.compare_overview import (
    config_section,
    curves_section,
    results_table,
)

GLANCE_RUNS = 4  # beyond this many runs "At a glance" names the best and leaves the rest below




def pick_runs(runs: list[dict]) -> list[dict]:
    """The multiselect, filled from the Runs table or a sweep (session "compare_pick"), the URL
    (?runs=…&runs=…), or the default; deleted runs drop out."""
    by_id = {run["run_id"]: run for run in runs}
    state = st.session_state
    if "compare_pick" in state:
        wanted = state.pop("compare_pick")
    elif "compare_runs" in state:
        wanted = state["compare_runs"]
    else:
        wanted = st.query_params.get_all("runs") or default_selection(runs)
    state["compare_runs"] = [run_id for run_id in wanted if run_id in by_id]
    picked = st.multiselect("Runs", list(by_id), key="compare_runs",
                            format_func=lambda run_id: run_label(by_id[run_id]),
                            placeholder="Choose runs to compare")
    st.query_params["runs"] = picked  # run ids in the URL: a reload or a link keeps the choice
    chosen = [by_id[run_id] for run_id in picked]
    labels = short_names([run["name"] for run in chosen])  # the page shows short names
    return [{**run, "name": label} for run, label in zip(chosen, labels, strict=True)]




def at_a_glance(runs: list[dict], table: pd.DataFrame) -> None:
    """The answers first: most accurate, fastest to train and to run, smallest, confusions."""
    lines, best = [], leaders(table)
    accuracy = accuracy_key(table)
    if (row := best["most_accurate"]) is not None:
        lines.append(most_accurate_line(table, row, accuracy))
    if (row := best["fastest_to_train"]) is not None:
        lines.append(f"**Fastest to train:** {plain(row['name'])} — {row['images_per_s']:,.0f} "
                     f"images/s, {duration(row['train_seconds'])} in all")
    if (row := best["fastest_to_run"]) is not None:
        lines.append(f"**Fastest to run:** {plain(row['name'])} — {row['latency_p50_ms']:.2f} ms "
                     "per image on the CPU")
    else:
        lines.append("**Fastest to run:** not measured yet — press *Measure inference latency* "
                     "below the table")
    if (row := best["smallest"]) is not None:
        lines.append(f"**Smallest:** {plain(row['name'])} — {row['params']:,.0f} parameters")
    differing = list(config_diff({run["run_id"]: {k: v for k, v in run["config"].items()
                                                  if k != "name"} for run in runs}))
    if len(runs) > 1:
        shown = ", ".join(plain(key) for key in differing[:8]) + (" …" if len(differing) > 8
                                                                 else "")
        lines.append(f"**Settings that differ:** {shown or 'none'} (see *Settings* below)")
    confused = [run for run in runs if (run.get("summary") or {}).get("confusion")]
    if len(confused) <= GLANCE_RUNS:
        lines += [f"**{plain(run['name'])}** confuses most: {confusion_sentence(run)}"
                  for run in confused]
    elif confused:
        lines.append("**What each run confuses:** under *Confusion matrices* below")
    with st.container(border=True):
        st.markdown("#### At a glance")
        st.markdown("\n".join(f"- {line}" for line in lines))


def most_accurate_line(table: pd.DataFrame, row: pd.Series, accuracy: str) -> str:
    """The most accurate run, named better than the runner-up only when McNemar's test on
    their test images says the difference is real (core.analysis.ranking.accuracy_headline)."""
    ranked = ranked_by_accuracy(table)
    others = [r for _, r in ranked.iterrows() if r["run_id"] != row["run_id"]]
    split = "test" if accuracy == "test_acc" else "best validation"
    best = {"name": plain(row["name"]), "accuracy": pct(row[accuracy])}
    runner = others[0] if others else None
    paired = None
    if runner is not None and accuracy == "test_acc":
        try:
            paired = compare_two(runner["run_id"], row["run_id"])
        except ValueError:
            paired = None  # different datasets or splits: not compared image by image
    runner_up = None if runner is None else {"name": plain(runner["name"]),
                                             "accuracy": pct(runner[accuracy])}
    line = accuracy_headline(best, runner_up, paired, split)
    rest = [f"{plain(r['name'])} {pct(r[accuracy])}" for r in others[1:]]
    if len(rest) > GLANCE_RUNS:
        rest = [f"next: {rest[0]}", f"last: {rest[-1]}"]
    return line + (f" (then {'; '.join(rest)})" if rest else "")


def compare_page(runs: list[dict]) -> None:
    chosen = pick_runs(runs)
    if not chosen:
        st.info("Choose at least one run above, or tick runs in the Runs table and press "
                "*Compare selected*.")
        return
    colors = run_colors(run["run_id"] for run in chosen)
    glance = st.container()
    curves_section(chosen, colors)
    st.subheader("Runs side by side")
    latency = measure_latency(chosen)
    table = results_table(chosen, colors, latency)
    with glance:
        at_a_glance(chosen, table)
    what_changed_section(chosen)
    config_section(chosen)
    per_class_section(chosen, colors)
    confusion_section(chosen)
    tradeoff_section(table, colors)
    parallel_section(chosen)
    downloads(chosen, table)


st.title("Compare runs")
all_runs = store().list_runs()
if not all_runs:
    st.info("No runs to compare yet. Train two models (say, two presets on the same data), or "
            "queue an architecture sweep, and come back.")
    st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
    st.page_link(PAGES["sweeps"], label="Sweep several architectures", icon=ICONS["sweeps"])
else:
    compare_page(all_runs)
