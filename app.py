"""CNN Studio: the Streamlit entry point. It only routes; each page lives in pages/.

    streamlit run app.py          (or: make run)

The workspace folder is CNN_STUDIO_HOME (default ./workspace), read by core itself.
Training runs in a background worker process (core.jobs), never in this server.
"""

import streamlit as st

from pages._common import stop_unless_store_answers
from pages._sign_in import admitted, sign_in_page, sign_out_control

st.set_page_config(page_title="CNN Studio", page_icon=":material/neurology:", layout="wide")


def page(file: str, title: str, icon: str, url_path: str | None = None, **options) -> st.Page:
    return st.Page(f"pages/{file}", title=title, icon=f":material/{icon}:", url_path=url_path,
                   **options)


pages = {
    "": [page("home.py", "Home", "home", default=True)],
    "Build": [
        page("datasets.py", "Datasets", "folder_open", "datasets"),
        page("train.py", "Train", "model_training", "train"),
        page("sweeps.py", "Sweep", "grid_view", "sweeps"),
    ],
    "Watch": [
        page("runs.py", "Runs", "monitoring", "runs"),
        page("compare.py", "Compare", "compare_arrows", "compare"),
        page("mistakes.py", "Error analysis", "troubleshoot", "mistakes"),
    ],
    "Use": [page("classify.py", "Classify", "image_search", "classify")],
}

# A shared server's sign-in (pages/_sign_in.py; open when none is configured). The pages are
# registered either way, so the URL keeps its page and signing in lands on it; none runs first.
signed_in = admitted()
current = st.navigation(pages, position="sidebar" if signed_in else "hidden")
if signed_in:
    sign_out_control()
    stop_unless_store_answers()  # after the sign-in, so visitors never see the database's address
    current.run()
else:
    sign_in_page()
