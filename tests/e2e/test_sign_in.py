"""The sign-in gate of a shared server, in a real browser against a real `streamlit run`."""

from __future__ import annotations

import pytest
from live_app import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, Server, open_page
from playwright.sync_api import sync_playwright

from core.auth import PASSWORD_ENV

PASSWORD = "correct horse battery staple"
pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


def test_a_real_server_asks_for_the_password_before_any_page(studio_home, tmp_path) -> None:
    server = Server(studio_home, tmp_path / "streamlit.log", env={PASSWORD_ENV: PASSWORD})
    url = server.start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                 args=CHROMIUM_ARGS)
            page = browser.new_page()
            open_page(page, f"{url}/datasets")  # a page's URL as the very first request
            uploaders = page.locator("[data-testid='stFileUploader']")
            nav = page.locator("[data-testid='stSidebarNav']")
            password = page.get_by_label("Password", exact=True)
            password.wait_for()  # the input's code loads after the first paint
            assert uploaders.count() == 0 and nav.count() == 0

            password.fill("letmein")
            password.press("Enter")
            page.get_by_text("Wrong password").wait_for()
            assert uploaders.count() == 0

            password.fill(PASSWORD)
            password.press("Enter")
            uploaders.first.wait_for()  # signed in, on the page the URL named
            assert page.get_by_role("heading", name="Datasets", exact=True).count() == 1
            assert nav.get_by_text("Classify").count() == 1

            page.get_by_role("button", name="Sign out").click()
            password.wait_for()
            assert uploaders.count() == 0
            browser.close()
    finally:
        server.stop()
