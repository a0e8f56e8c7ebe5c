"""Sweep: one dataset and budget over several architectures (optionally a small grid of learning
rates and batch sizes, and repeated seeds), queued as a named group; the group's ranking."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import math

import pandas as pd
import streamlit as st

from core.analysis.sweep import (
    free_sweep_name,
    grid_shape,
    group_runs,
    group_summary,
    parse_rates,
    plan_sweep,
    submit_sweep,
)
from core.config import AUGMENTATION, TrainConfig
from core.data.dataset import list_datasets
from core.runs.queue import keep_queue_moving
from models import list_models, list_presets
from pages.ui.common import (
    ACTIVE,
    ICONS,
    MISSING,
    PAGES,
    plain,
    store,
    switch_to,
    user_errors,
)
from pages.ui.compare_charts import png_config, sweep_figure
from pages.ui.dataset_view import current_dataset
from pages.ui.estimate import sweep_estimate
from pages.ui.settings_form import group_settings, setting_widget, settings_row

BATCH_SIZES = [16, 32, 64, 128, 256, 512]
AUGMENTATIONS = group_settings(AUGMENTATION)
POLL_SECONDS = 2.0


@st.cache_data(show_spinner=False)
def model_names() -> list[str]:
    return list_models()


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def sweep_form(datasets: list[str], taken: set[str]) -> None:
    st.subheader("New sweep")
    cols = st.columns(2)
    data = cols[0].selectbox("Dataset", datasets, key="sweep_data")
    group = cols[1].text_input("Sweep name", value=free_sweep_name(data, taken), max_chars=80,
                               key=f"sweep_group_name_{data}_{len(taken)}")
    models = st.multiselect("Architectures", model_names(), key="sweep_models",
                            default=[m for m in list_presets() if m != "resnet9"],
                            help="Presets first, then every timm architecture (type to search)")
    cols = st.columns(4)
    epochs = setting_widget(cols[0], "epochs", prefix="sweep",
                            help="With a time budget: the most epochs a run may take")
    minutes = setting_widget(cols[1], "budget_minutes", prefix="sweep",
                             label="Time budget per run (minutes)",
                             help="Empty: no time limit. Otherwise a run stops at the first "
                                  "epoch end past this many minutes")
    optimizer = setting_widget(cols[2], "optimizer", prefix="sweep")
    seeds = cols[3].number_input("Seeds per configuration", 1, 10, 1, key="sweep_seeds",
                                 help="Repeats with seeds 0, 1, …: the ranking shows mean ± std")
    with st.expander("Augmentation (every run of the sweep)"):
        settings_row(AUGMENTATIONS, prefix="sweep")
    augmentation = {name: st.session_state[f"sweep_{name}"] for name in AUGMENTATIONS}
    cols = st.columns(2)
    rates = cols[0].text_input("Learning rates (optional grid)", key="sweep_lrs",
                               placeholder="e.g. 0.001, 0.003 — empty: the optimizer's default")
    batches = cols[1].multiselect("Batch sizes (optional grid)", BATCH_SIZES, key="sweep_batches",
                                  placeholder="empty: 64")
    with user_errors("plan the sweep"):
        base = TrainConfig(data=data, epochs=int(epochs), optimizer=optimizer, **augmentation)
        configs = plan_sweep(base, models, lrs=parse_rates(rates), batch_sizes=batches,
                             seeds=list(range(int(seeds))), budget_minutes=minutes or None)
        grid = " × ".join(plural(count, word) for word, count in grid_shape(configs).items())
        st.caption(f"This queues **{len(configs)} runs** ({grid}); they train one after another.")
        sweep_estimate(configs, current_dataset(data))
        if st.button("Queue the sweep", type="primary", key="sweep_go",
                     icon=":material/play_arrow:"):
            submit_sweep(group, configs, store())
            st.session_state["sweep_pick"] = group.strip()
            st.toast(f"Queued {len(configs)} runs as sweep {plain(group.strip())}")
            st.rerun()


def summary_table(summary: pd.DataFrame) -> None:
    def mean_std(mean: float, std: float) -> str:
        if math.isnan(mean):
            return "–"
        return f"{mean:.1%}" + ("" if math.isnan(std) else f" ± {std:.1%}")

    def interval(low: float, high: float) -> str:
        return "–" if math.isnan(low) else f"{low:.1%} – {high:.1%}"

    shown = pd.DataFrame({
        "rank": summary["rank"], "configuration": summary["configuration"],
        "test acc (mean ± std)": [mean_std(m, s) for m, s in
                                  zip(summary["test_acc_mean"], summary["test_acc_std"],
                                      strict=True)],
        "test acc 95% interval": [interval(low, high) for low, high in
                                  zip(summary["test_acc_ci_low"], summary["test_acc_ci_high"],
                                      strict=True)],
        "best val acc (mean ± std)": [mean_std(m, s) for m, s in
                                      zip(summary["best_val_acc_mean"],
                                          summary["best_val_acc_std"], strict=True)],
        "seeds done": summary["seeds"], "runs": summary["runs"],
        "training time (s, mean)": summary["train_seconds_mean"].round(1),
    })
    st.dataframe(shown, hide_index=True, key="sweep_summary", placeholder=MISSING,
                 column_config={"training time (s, mean)": st.column_config.NumberColumn(
                     format="%.1f")})


def best_so_far(summary: pd.DataFrame) -> str:
    """The top configuration, said to be ahead only when its interval clears the next one's."""
    top = summary.iloc[0]
    line = f"**Best so far:** {plain(top['configuration'])}"
    if top["overlaps_next"] is True:
        line += (f" — not clearly ahead of {plain(summary.iloc[1]['configuration'])}: their 95% "
                 "intervals overlap")
    return line


def group_view(group: str) -> None:
    db = store()
    members = group_runs(db, group)
    done = sum(run["status"] == "completed" for run in members)
    active = sum(run["status"] in ACTIVE for run in members)
    st.progress(done / max(1, len(members)),
                text=f"{done} of {len(members)} runs completed" +
                     (f" · {active} queued or running" if active else ""))
    summary = group_summary(db, group)
    if summary["test_acc_mean"].notna().any() or summary["best_val_acc_mean"].notna().any():
        summary_table(summary)
        st.plotly_chart(sweep_figure(summary), key="sweep_chart", config=png_config(group))
        st.markdown(best_so_far(summary))
        close = [f"{plain(row['configuration'])} and the next" for _, row in summary.iterrows()
                 if row["overlaps_next"] is True]
        if close:
            st.caption("95% intervals overlap (the order may be noise): " + "; ".join(close))
    else:
        st.info("The ranking appears as soon as the first run of the sweep finishes.")
    with st.expander(f"The {len(members)} runs"):
        st.dataframe([{"run": run["name"], "status": run["status"], "model": run["model"],
                       "seed": run["config"].get("seed"), "test acc": run["test_acc"]}
                      for run in members], hide_index=True, key="sweep_members",
                     placeholder=MISSING, column_config={
                         "test acc": st.column_config.NumberColumn(format="percent")})
    with_data = [run["run_id"] for run in members if run["epoch"]]
    if st.button("Compare these runs", key="sweep_compare", icon=ICONS["compare"],
                 disabled=not with_data):
        st.session_state["compare_pick"] = with_data
        switch_to(PAGES["compare"])
    if active:
        st.caption("Updates every few seconds while the sweep trains.")
        st.page_link(PAGES["runs"], label="Watch the runs train live", icon=ICONS["runs"])


@st.fragment(run_every=POLL_SECONDS)
def live_group_view(group: str) -> None:
    group_view(group)
    if not any(run["status"] in ACTIVE for run in group_runs(store(), group)):
        st.rerun(scope="app")


def groups_section(runs: list[dict]) -> None:
    groups = list(dict.fromkeys(run["group_name"] for run in runs if run.get("group_name")))
    if not groups:
        return
    st.subheader("Sweeps")
    if st.session_state.get("sweep_pick") not in groups:
        st.session_state["sweep_pick"] = groups[0]
    group = st.selectbox("Sweep", groups, key="sweep_pick")
    if any(run["status"] in ACTIVE for run in runs if run.get("group_name") == group):
        live_group_view(group)
    else:
        group_view(group)


st.title("Architecture sweep")
st.caption("Train several architectures on the same data and budget, queued as one named group, "
           "then rank them by mean accuracy over seeds.")
all_runs = keep_queue_moving(store())
names = list_datasets()
if not names:
    st.info("Add a dataset first: a sweep trains several models on one dataset.")
    st.page_link(PAGES["datasets"], label="Add a dataset", icon=ICONS["datasets"])
groups_section(all_runs)
if names:
    sweep_form(names, {run["group_name"] for run in all_runs if run.get("group_name")})
