"""The dashboard's pages (Streamlit scripts) and their small helper modules.

Files whose names start with `_` and the pure modules (`charts`, `metric_log`) are helpers,
not pages; `app.py` names the pages.
"""
