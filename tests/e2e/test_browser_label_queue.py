"""In a real browser: on Error analysis, "Find likely label errors" queues the search on the
background worker (a real `python -m core worker --imports`), its progress shows, the queue
appears worst first, and dropping the worst image saves a new dataset version."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from live_app import (
    NEEDS_CHROMIUM,
    assert_no_exception,
    open_page,
    screenshot,
    served,
    wait_idle,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


@pytest.fixture
def shapes_app(prepared_home: Path, tmp_path: Path) -> Iterator[str]:
    from core.data.catalog import add_demo

    add_demo("shapes", "shapes")
    with served(prepared_home, tmp_path / "streamlit.log") as url:
        yield url


def test_the_label_error_queue_is_found_in_the_background_and_saves_a_version(
        shapes_app: str, browser) -> None:
    from core.data.dataset import list_datasets, load_dataset

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(45_000)
    open_page(page, f"{shapes_app}/mistakes")
    page.get_by_role("tab", name="Likely label errors").click()
    for label, value in (("Folds", "2"), ("Epochs per fold", "1")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        wait_idle(page)
    page.get_by_role("button", name="Find likely label errors").click()
    page.get_by_text("in 300 images, worst first").wait_for(timeout=180_000)
    wait_idle(page)
    assert_no_exception(page)
    screenshot(page, "label-queue")
    page.get_by_role("tab", name="Likely label errors").click()
    page.locator("[data-testid='stRadio']").first.get_by_text("drop", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Save new version").click()
    page.get_by_text("Saved dataset shapes").first.wait_for(timeout=60_000)
    assert_no_exception(page)
    assert "shapes-v2" in list_datasets()
    assert len(load_dataset("shapes-v2").items) == 299
    assert len(load_dataset("shapes").items) == 300
