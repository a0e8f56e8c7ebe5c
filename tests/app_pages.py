"""The pages through Streamlit's AppTest, as the app lane's tests open and read them."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 60  # the first run imports torch and timm


def open_page(page: str, **state) -> AppTest:
    """`page` as a person reaches it: through app.py's router, with `state` set first."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def unescaped_texts(elements) -> str:
    """texts without the markdown escapes `pages.ui.common.plain` adds to user text."""
    return texts(elements).replace("\\", "")
