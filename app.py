"""CNN Studio: the Streamlit entry point. It only routes (pages/ui/router.py): the sign-in
gate, then the page the URL names.

    streamlit run app.py          (or: make run)

The workspace folder is CNN_STUDIO_HOME (default ./workspace), read by core itself.
Training runs in a background worker process (core.runs), never in this server.
"""

from pages.ui.router import route

route()
