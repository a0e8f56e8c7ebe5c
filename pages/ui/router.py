"""The dashboard's one gate and router: the sign-in check, then st.navigation over the pages.

`app.py` calls `route()`, and so does the first statement of every page script. The reason:
on a fresh server whose very first request names a page (say /train), Streamlit runs that
page's file by itself, in its legacy `pages/` folder mode, until some session has called
st.navigation. The page's first statement then checks the sign-in and routes the same URL
through st.navigation before anything of the page runs; the page, run again inside that
navigation, finds routing under way and goes on to draw itself. Only top-level files of
`pages/` are ever treated as pages, so this package (`pages/ui/`) never is.
"""

from __future__ import annotations

import contextvars

# pandas whole before any page runs: plotly takes pandas from sys.modules without importing
# it, so a figure built while another thread was half-way through pandas' first import failed
# with "partially initialized module 'pandas'" (seen on the rerun after an import). An import
# here waits for that thread's import to finish, and every page passes through here first.
import pandas  # noqa: F401
import streamlit as st

from pages.ui.common import ICONS, PAGES, stop_unless_store_answers
from pages.ui.sign_in import admitted, sign_in_page, sign_out_control

_routing = contextvars.ContextVar("cnn_studio_routing", default=False)

SECTIONS = {  # the sidebar: section → (page key, title)
    "": [("home", "Home")],
    "Build": [("datasets", "Datasets"), ("train", "Train"), ("sweeps", "Sweep")],
    "Watch": [("runs", "Runs"), ("compare", "Compare"), ("mistakes", "Error analysis")],
    "Use": [("classify", "Classify")],
}


def page(key: str, title: str) -> st.Page:
    """A page of pages/ (common.PAGES, ICONS); its URL path is its key, but Home's is "/"."""
    if key == "home":
        return st.Page(PAGES[key], title=title, icon=ICONS[key], default=True)
    return st.Page(PAGES[key], title=title, icon=ICONS[key], url_path=key)


def route() -> None:
    """Sign-in, then the page the URL names; a page script that called this ends here."""
    if _routing.get():
        return  # inside the navigation below: the page draws itself
    token = _routing.set(True)
    try:
        st.set_page_config(page_title="CNN Studio", page_icon=":material/neurology:",
                           layout="wide")
        signed_in = admitted()
        # .streamlit/config.toml hides the legacy mode's list of page files; ours shows
        st.set_option("client.showSidebarNavigation", True)
        pages = {section: [page(key, title) for key, title in entries]
                 for section, entries in SECTIONS.items()}
        current = st.navigation(pages, position="sidebar" if signed_in else "hidden")
        if signed_in:
            sign_out_control()
            stop_unless_store_answers()  # after the sign-in: visitors never see the DB's address
            current.run()
        else:
            sign_in_page()
    finally:
        _routing.reset(token)
    st.stop()
