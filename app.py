"""CNN Studio: the Streamlit entry point. It only routes; each page lives in pages/.

    streamlit run app.py          (or: make run)

The workspace folder is CNN_STUDIO_HOME (default ./workspace), read by core itself.
Training runs in a background worker process (core.runs), never in this server.
"""

import streamlit as st

from pages._common import ICONS, PAGES, stop_unless_store_answers
from pages._sign_in import admitted, sign_in_page, sign_out_control

st.set_page_config(page_title="CNN Studio", page_icon=":material/neurology:", layout="wide")


def page(key: str, title: str, **options) -> st.Page:
    """A page of pages/ (_common.PAGES, ICONS); its URL path is its key, but Home's is "/"."""
    url_path = None if options.get("default") else key
    return st.Page(PAGES[key], title=title, icon=ICONS[key], url_path=url_path, **options)


pages = {
    "": [page("home", "Home", default=True)],
    "Build": [page("datasets", "Datasets"), page("train", "Train"), page("sweeps", "Sweep")],
    "Watch": [page("runs", "Runs"), page("compare", "Compare"),
              page("mistakes", "Error analysis")],
    "Use": [page("classify", "Classify")],
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
