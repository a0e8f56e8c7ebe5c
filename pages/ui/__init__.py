"""The pages' building blocks: the router and sign-in gate, forms, panels and charts.

Streamlit treats only the top-level files of pages/ as pages, so nothing here is ever one.
"""
