"""In a real browser: an image like none of the training images gets "None of the classes I
know" on Classify, and Compare shows what changed between two runs, image by image.

The workspace is prepared in this process before the dashboard starts: the `shapes` demo and
two runs trained on it (six epochs, then one), so the browser only reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from live_app import (
    NEEDS_CHROMIUM,
    assert_no_exception,
    choose_file,
    open_page,
    screenshot,
    served,
    wait_idle,
)
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]


@pytest.fixture
def trained_app(prepared_home: Path, tmp_path: Path) -> Iterator[str]:
    from core.config import TrainConfig
    from core.data.catalog import add_demo
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    add_demo("shapes", "shapes")
    store = Store()
    for name, epochs in (("six-epochs", 6), ("one-epoch", 1)):
        run_id = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=epochs, seed=0,
                                     device="cpu", name=name), store, status="running")
        assert execute_run(run_id, store)["status"] == "completed"
    with served(prepared_home, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(trained_app: str, browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(45_000)
    yield tab


def test_noise_is_none_of_the_classes_and_compare_shows_what_changed(trained_app: str, page,
                                                                     tmp_path: Path) -> None:
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)) \
        .save(noise)
    open_page(page, f"{trained_app}/classify")  # the best run (six epochs) by default
    choose_file(page, "Images to classify", noise)
    page.get_by_text(re.compile("predicted in")).first.wait_for(timeout=180_000)
    wait_idle(page)
    main = page.inner_text("[data-testid='stMain']")
    assert "None of the classes I know" in main, main[:2000]
    assert_no_exception(page)
    screenshot(page, "classify-unknown")

    open_page(page, f"{trained_app}/compare")
    page.get_by_text("What changed, image by image").wait_for(timeout=180_000)
    shown = 0
    for kind in ("Fixed", "Broken", "Both wrong"):  # each tab: its images, or "None."
        tab = page.get_by_role("tab", name=re.compile(rf"^{kind}.* · \d+$")).first
        tab.click()
        count = int(tab.inner_text().rsplit("·", 1)[1])
        panel = page.get_by_role("tabpanel").filter(visible=True).first
        if count:  # a gallery caption: the true class, A's answer, B's answer
            panel.get_by_text("true:").first.wait_for()
            shown += count
        else:
            panel.get_by_text("None.").wait_for()
    assert shown, "neither run gets an image wrong: no gallery to see"
    wait_idle(page)
    assert_no_exception(page)
    screenshot(page, "compare-what-changed")
