"""Error analysis: a run's validation confusion matrix — click a cell for its images, hardest
first — its most confident mistakes, per-class galleries, and a cleaned dataset version; and a
dataset's likely label errors (a background search), a queue to fix them in; and a data map
of a run's features, a click on a point opening its image."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

from functools import partial

import numpy as np
import pandas as pd
import streamlit as st

from core.analysis.compare import top_confusions
from core.analysis.error_analysis import (
    cell_images,
    class_gallery,
    confident_mistakes,
    confusion_from_predictions,
    validation_predictions,
)
from core.data.dataset import list_datasets, load_dataset
from pages.ui.common import (
    ACTIVE,
    ICONS,
    PAGES,
    has_model,
    pct,
    plain,
    run_label,
    store,
    user_errors,
    weights_stamp,
)
from pages.ui.compare_charts import clickable_confusion, png_config
from pages.ui.data_map import data_map_panel
from pages.ui.label_queue import label_errors, pick_dataset
from pages.ui.mistake_marks import gallery, save_panel

VIEWS = ["Confusion cell", "Most confident mistakes", "Class gallery"]


@st.cache_data(max_entries=8, show_spinner="Predicting the validation images…")
def predictions(run_id: str, stamp: int) -> pd.DataFrame:
    """Validation predictions of the run's best checkpoint (recomputed when it changes)."""
    return validation_predictions(run_id, store())


def pick_run(runs: list[dict]) -> dict:
    by_id = {run["run_id"]: run for run in runs}
    wanted = st.session_state.get("mistakes_run") or st.query_params.get("run")
    st.session_state["mistakes_run"] = wanted if wanted in by_id else runs[0]["run_id"]
    picked = st.selectbox("Run", list(by_id), key="mistakes_run",
                          format_func=lambda run_id: run_label(by_id[run_id]))
    st.query_params["run"] = picked  # the run id in the URL: a reload keeps it
    return by_id[picked]


def on_cell_click(run_id: str, classes: list[str]) -> None:
    """A click on the matrix fills the (true, predicted) boxes below it."""
    event = st.session_state.get(f"mistakes_matrix_{run_id}")
    points = (event or {}).get("selection", {}).get("points") or []
    if not points:
        return
    point = points[0]
    if point.get("customdata") is not None:
        true, predicted = (int(v) for v in point["customdata"][:2])
    else:  # older frontends: the axis labels (escaped by charts.safe) name the cell
        from pages.ui.charts import safe

        names = {safe(c): i for i, c in enumerate(classes)}
        true, predicted = names[point["y"]], names[point["x"]]
    st.session_state[f"mistakes_true_{run_id}"] = classes[true]
    st.session_state[f"mistakes_pred_{run_id}"] = classes[predicted]


def default_cell(classes: list[str], matrix: np.ndarray, run_id: str) -> None:
    """Start on the largest off-diagonal cell (or the first class's diagonal if none)."""
    pairs = top_confusions(classes, matrix, k=1)
    true, predicted = (pairs[0][0], pairs[0][1]) if pairs else (classes[0], classes[0])
    for key, value in ((f"mistakes_true_{run_id}", true), (f"mistakes_pred_{run_id}", predicted)):
        if st.session_state.get(key) not in classes:
            st.session_state[key] = value


def cell_view(run: dict, frame: pd.DataFrame, classes: list[str], limit: int):
    run_id = run["run_id"]
    matrix = confusion_from_predictions(frame, len(classes))
    default_cell(classes, matrix, run_id)
    true = st.session_state[f"mistakes_true_{run_id}"]
    predicted = st.session_state[f"mistakes_pred_{run_id}"]
    left, right = st.columns([3, 2])
    fig = clickable_confusion(matrix, classes, "Validation confusion matrix — click a cell",
                              picked=(classes.index(true), classes.index(predicted)))
    left.plotly_chart(fig, key=f"mistakes_matrix_{run_id}", selection_mode="points",
                      on_select=partial(on_cell_click, run_id, classes),
                      config=png_config(f"confusion-val-{run['name']}"))
    right.markdown("**The cell shown**")
    right.selectbox("True class", classes, key=f"mistakes_true_{run_id}")
    right.selectbox("Predicted class", classes, key=f"mistakes_pred_{run_id}")
    rows = cell_images(frame, true, predicted)
    right.caption(f"{len(rows)} validation images of class {plain(true)} were predicted as "
                  f"{plain(predicted)}; highest loss first. Clicking a cell of the matrix "
                  "chooses it too.")
    return rows.head(limit)


def analysis(run: dict) -> None:
    frame = predictions(run["run_id"], weights_stamp(run["run_id"]))
    dataset = load_dataset(run["data"])
    classes = list(dataset.classes)
    wrong = int((~frame["correct"]).sum())
    cols = st.columns(3)
    cols[0].metric("Validation images", len(frame))
    cols[1].metric("Mistakes", wrong)
    cols[2].metric("Validation accuracy", pct(frame["correct"].mean() if len(frame) else None))
    cols = st.columns([3, 1])
    view = cols[0].segmented_control("Show", VIEWS, default=VIEWS[0], key="mistakes_view") \
        or VIEWS[0]
    limit = cols[1].number_input("Images at most", 6, 240, 24, 6, key="mistakes_limit")
    if view == VIEWS[0]:
        rows = cell_view(run, frame, classes, int(limit))
    elif view == VIEWS[1]:
        st.caption("Wrong predictions made with the highest probability: often mislabeled "
                   "images, or a class the model has learnt a shortcut for.")
        rows = confident_mistakes(frame, int(limit))
    else:
        cls = st.selectbox("Class", classes, key="mistakes_class")
        st.caption(f"Validation images of class {plain(cls)}, hardest (highest loss) first.")
        rows = class_gallery(frame, cls, int(limit))
    gallery(rows, dataset, prefix=str(VIEWS.index(view)))
    st.divider()
    save_panel(dataset, run)


def label_errors_tab(preferred: str | None) -> None:
    names = list_datasets()
    if not names:
        st.info("No dataset yet. Add one first; its labels can be checked without a trained "
                "model.")
        st.page_link(PAGES["datasets"], label="Add a dataset", icon=ICONS["datasets"])
        return
    with user_errors("look for label errors"):
        label_errors(load_dataset(pick_dataset(names, preferred)))


st.title("Error analysis")
st.caption("What a run gets wrong on its validation images, and which labels of a dataset look "
           "wrong. Mark images that are mislabeled or should go, and save a new version of the "
           "dataset to retrain on; the original stays as it is.")
runs_tab, labels_tab, map_tab = st.tabs(["A run's mistakes", "Likely label errors", "Data map"])
finished = [run for run in store().list_runs()
            if run["status"] not in ACTIVE and has_model(run)]
chosen = None
with runs_tab:
    if not finished:
        st.info("No trained model yet. Error analysis opens a finished run's validation images; "
                "train a model first.")
        st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
    else:
        chosen = pick_run(finished)
        with user_errors("analyse this run"):
            analysis(chosen)
with labels_tab:
    label_errors_tab(chosen["data"] if chosen else None)
with map_tab:
    if chosen is None:
        st.info("The data map shows a trained run's view of the images; train a model first.")
    else:
        st.caption(f"Run {plain(run_label(chosen))} (chosen on the first tab).")
        data_map_panel(chosen)
