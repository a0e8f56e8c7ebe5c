"""Classify: choose a trained run (the best by default), then classify photos with it (top-k,
latency, Grad-CAM, a second model beside it), classify a whole zip or folder, export the
model (ONNX, TorchScript) with a parity check, or import a model trained elsewhere."""

from pages.ui.router import route

route()  # first: the sign-in gate and router (pages/ui/router.py)

import streamlit as st

from core.analysis.ranking import best_run_id
from pages.ui.classify_images import Side, images_tab
from pages.ui.classify_many import many_tab
from pages.ui.common import ICONS, PAGES, has_model, store, user_errors
from pages.ui.export import export_tab
from pages.ui.export_package import elsewhere_panel
from pages.ui.model_choice import choose_run, describe_run, model_for
from pages.ui.model_import import import_tab

TABS = ["Images", "Classify many", "Export", "Import a model"]


def classify_page(runs: list[dict]) -> None:
    run_id = choose_run(runs, "Trained run (the best completed one unless you choose)",
                        "classify_run", best_run_id(runs))
    run = next(run for run in runs if run["run_id"] == run_id)
    model = None
    with user_errors("load this run's model"):  # a missing or damaged checkpoint: a sentence
        model = model_for(run_id)
    if model is None:
        with st.expander("Import a model instead", icon=":material/upload:"):
            import_tab()
        return
    st.caption(describe_run(run, model))
    images, many, export, imports = st.tabs(TABS, key="classify_tabs")
    with images, user_errors("classify the images"):
        images_tab(runs, Side(run, model))
    with many:
        many_tab(run, model)
    with export:
        export_tab(run)
    with imports:
        import_tab()
    elsewhere_panel(run)


st.title("Classify")
trained = [run for run in store().list_runs() if has_model(run)]
if trained:
    classify_page(trained)
else:
    st.info("No trained model yet. Train one first (any run that finished an epoch can "
            "classify images), or import one below.")
    st.page_link(PAGES["train"], label="Train a model", icon=ICONS["train"])
    with st.expander("Import a model", icon=":material/upload:"):
        import_tab()
