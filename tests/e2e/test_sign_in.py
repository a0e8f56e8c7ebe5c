"""The sign-in gate of a shared server, in a real browser against a real `streamlit run`.

Every page address, and every helper module's name as an address, is the VERY FIRST request
of a fresh server (Streamlit then runs a page file by itself, in its legacy `pages/` folder
mode): nothing of the workspace may show before the right password is typed, not even for a
moment (a MutationObserver watches from the first paint). Then the page opens.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from live_app import CHROMIUM, CHROMIUM_ARGS, NEEDS_CHROMIUM, ROOT, Server, open_page

from core.auth import PASSWORD_ENV
from core.data.catalog import add_demo
from pages.ui.common import PAGE_KEYS

PASSWORD = "correct horse battery staple"
SECRET = "confidential-pets-7f3a"  # a dataset name: workspace content a visitor must not see
HEADINGS = {"datasets": "Datasets", "train": "Train", "runs": "Runs", "compare": "Compare runs",
            "classify": "Classify", "sweeps": "Architecture sweep", "mistakes": "Error analysis"}
HELPERS = sorted({path.stem for path in (ROOT / "pages" / "ui").glob("*.py")} - {"__init__"}
                 | {"ui", "_common", "_sign_in", "_train_form"})  # today's names, and old ones
pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

WATCH = """() => {
  window.__seen = [];
  const look = () => {
    const text = document.body ? document.body.innerText : '';
    const found = [];
    if (text.includes('SECRET')) found.push('the workspace');
    if (document.querySelector('[data-testid="stSidebarNav"]')) found.push('the page list');
    if (document.querySelector('[data-testid="stFileUploader"]')) found.push('an uploader');
    for (const what of found) if (!window.__seen.includes(what)) window.__seen.push(what);
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true,
                                                characterData: true});
  look();
}""".replace("SECRET", SECRET)


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (each test opens its own page on its own fresh server)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def guarded_home(tmp_path_factory) -> Path:
    """A workspace holding a dataset whose name must stay hidden."""
    home = tmp_path_factory.mktemp("guarded") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        add_demo("shapes", SECRET)
    return home


def first_request(browser, guarded_home: Path, log: Path, address: str):
    """A fresh server whose first request is `address`; the page, watched from its first paint,
    and the server (to stop)."""
    server = Server(guarded_home, log, env={PASSWORD_ENV: PASSWORD})
    url = server.start()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.add_init_script(f"({WATCH})()")
    open_page(page, f"{url}/{address}")
    return page, server


def wait_for_page(page, key: str) -> None:
    """Until the page `key` shows (Home: its workspace counts; the sign-in has the same title)."""
    if key == "home":
        page.locator("[data-testid='stMetric']").first.wait_for()
    else:
        page.get_by_role("heading", name=HEADINGS[key], exact=True).first.wait_for()


def sign_in(page) -> None:
    if page.locator("[role='dialog']").count():  # "Page not found" for a helper's name
        page.keyboard.press("Escape")
    password = page.get_by_label("Password", exact=True)
    password.wait_for()
    password.fill(PASSWORD)
    password.press("Enter")


@pytest.mark.parametrize("address", PAGE_KEYS)
def test_a_page_address_as_the_first_request_shows_only_the_sign_in(browser, guarded_home,
                                                                    tmp_path, address) -> None:
    page, server = first_request(browser, guarded_home, tmp_path / "streamlit.log",
                                 "" if address == "home" else address)
    try:
        page.get_by_label("Password", exact=True).wait_for()
        page.wait_for_timeout(1500)  # anything a page would draw has had its chance
        assert page.evaluate("window.__seen") == [], "shown before the sign-in"
        sign_in(page)
        wait_for_page(page, address)
        assert page.locator("[data-testid='stSidebarNav']").get_by_text("Classify").count() == 1
    finally:
        page.close()
        server.stop()


@pytest.mark.parametrize("address", HELPERS)
def test_a_helper_module_s_name_as_the_first_request_shows_only_the_sign_in(
        browser, guarded_home, tmp_path, address) -> None:
    page, server = first_request(browser, guarded_home, tmp_path / "streamlit.log", address)
    try:
        page.get_by_label("Password", exact=True).wait_for()
        page.wait_for_timeout(1500)
        assert page.evaluate("window.__seen") == [], "shown before the sign-in"
        sign_in(page)
        wait_for_page(page, "home")
    finally:
        page.close()
        server.stop()


def test_a_wrong_password_is_refused_and_sign_out_closes_the_page(browser, guarded_home,
                                                                  tmp_path) -> None:
    page, server = first_request(browser, guarded_home, tmp_path / "streamlit.log", "datasets")
    try:
        password = page.get_by_label("Password", exact=True)
        password.wait_for()
        password.fill("letmein")
        password.press("Enter")
        page.get_by_text("Wrong password").wait_for()
        assert page.evaluate("window.__seen") == []
        sign_in(page)
        page.get_by_role("heading", name="Datasets", exact=True).wait_for()
        page.get_by_role("button", name="Sign out").click()
        password.wait_for()
        page.wait_for_timeout(1000)
        assert page.locator("[data-testid='stFileUploader']").count() == 0
    finally:
        page.close()
        server.stop()
