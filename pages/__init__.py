"""The dashboard's pages: one Streamlit script per page, each starting with `route()`
(pages/ui/router.py). Their building blocks live in pages/ui/."""
