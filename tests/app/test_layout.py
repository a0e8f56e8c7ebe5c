"""The dashboard's layout rules: pages/ holds only page scripts, each of which routes through
the sign-in gate before anything else, and nothing touches Streamlit's internals."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from pages.ui.common import PAGES

ROOT = Path(__file__).resolve().parents[2]
INTERNALS = re.compile(r"streamlit\.runtime|streamlit\.web|PagesManager|uses_pages_directory"
                       r"|from streamlit\.\w*\._|import streamlit\.\w*\._")


def test_pages_folder_holds_exactly_the_routed_pages() -> None:
    scripts = {str(path) for path in (ROOT / "pages").glob("*.py")
               if path.name != "__init__.py"}
    assert scripts == set(PAGES.values())


def test_every_page_script_starts_with_the_gate() -> None:
    for script in PAGES.values():
        body = ast.parse(Path(script).read_text()).body
        if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        first, second = body[0], body[1]
        assert isinstance(first, ast.ImportFrom) and first.module == "pages.ui.router" \
            and [alias.name for alias in first.names] == ["route"], script
        assert isinstance(second, ast.Expr) and isinstance(second.value, ast.Call) \
            and getattr(second.value.func, "id", None) == "route", script


def test_app_routes_and_does_nothing_else() -> None:
    body = [node for node in ast.parse((ROOT / "app.py").read_text()).body
            if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
    assert [ast.unparse(node) for node in body] == ["from pages.ui.router import route",
                                                    "route()"]


def test_no_file_touches_streamlit_internals() -> None:
    files = [ROOT / "app.py", *(ROOT / "pages").rglob("*.py"), *(ROOT / "core").rglob("*.py")]
    offenders = [str(path.relative_to(ROOT)) for path in files
                 if INTERNALS.search(path.read_text())]
    assert offenders == []
