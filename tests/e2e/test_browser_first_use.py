"""A new user's first steps in one real Chromium session (issue 17): a large upload straight
after an import is kept, an import survives leaving the page, the Train page shows a time
estimate, a timm network trains from a weights file on disk, and the server log shows no
deprecation warning.

Debian's chromium driven by playwright against `streamlit run app.py` on its own workspace.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from live_app import (
    CHROMIUM,
    CHROMIUM_ARGS,
    NEEDS_CHROMIUM,
    Server,
    assert_no_exception,
    choose_file,
    deprecation_warnings,
    kill_our_workers,
    open_page,
    screenshot,
    uploader,
    wait_idle,
)
from PIL import Image
from playwright.sync_api import expect
from upload_files import png

pytestmark = [pytest.mark.browser, pytest.mark.slow, NEEDS_CHROMIUM]

BIG_MB = 110  # the dropped upload was a 164 MB zip; a 1.2 MB one was kept


def small_zip(path: Path, per_class: int = 12) -> Path:
    """Three classes of plain-colour PNGs and one file that is not an image (its report then
    draws the dropped-files table): an import that finishes in seconds."""
    colours = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
    with zipfile.ZipFile(path, "w") as archive:
        for name, colour in colours.items():
            for index in range(per_class):
                shade = tuple(max(0, c - 3 * index) for c in colour)
                archive.writestr(f"{name}/{index:03d}.png", png(shade, 16))
        archive.writestr("red/notes.png", b"not an image")
    return path


def many_zip(path: Path, per_class: int = 500) -> Path:
    """Three classes of small PNGs: an import that takes a while on a loaded 2-core machine."""
    with zipfile.ZipFile(path, "w") as archive:
        for label, colour in enumerate(((200, 40, 40), (40, 200, 40), (40, 40, 200))):
            for index in range(per_class):
                shade = tuple((c + 7 * index) % 256 for c in colour)
                archive.writestr(f"c{label}/{index:04d}.png", png(shade, 24))
    return path


def big_zip(path: Path, megabytes: int = BIG_MB) -> Path:
    """A zip of incompressible files, stored: `megabytes` MB on the wire."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for index in range(megabytes):
            archive.writestr(f"noise/blob_{index:03d}.bin", rng.bytes(1024 * 1024))
    return path


@pytest.fixture
def served(tmp_path: Path):
    home = tmp_path / "workspace"
    server = Server(home, tmp_path / "streamlit.log")
    try:
        yield server, server.start()
    finally:
        server.stop()
        kill_our_workers(home)


@pytest.fixture(scope="module")
def browser():
    """One Chromium for both tests of this file: one real browser session, as a new user has."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(30_000)
    yield tab
    tab.close()


def zip_uploader(page):
    return uploader(page, "A zip of class folders")


def import_small_zip(page, archive: Path, name: str) -> None:
    zip_uploader(page).locator("input[type=file]").set_input_files(archive)
    zip_uploader(page).get_by_text(archive.name).wait_for()
    name_box = page.get_by_role("textbox", name="Dataset name").first
    name_box.fill(name)
    name_box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Import zip").click()
    page.get_by_text(f"Imported {name}: 36 images in 3 classes").wait_for(timeout=120_000)


def sidebar_link(page, title: str):
    return page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True)


def test_first_use_of_the_datasets_page(served, page, tmp_path: Path, monkeypatch) -> None:
    server, url = served
    small = small_zip(tmp_path / "colours.zip")
    big = big_zip(tmp_path / "big-upload.zip")
    assert big.stat().st_size >= 100 * 1024 * 1024

    open_page(page, f"{url}/datasets")
    import_small_zip(page, small, "colours")
    # Straight after the import (its report on screen), choose the large zip.
    zip_uploader(page).locator("input[type=file]").set_input_files(big)
    go = page.get_by_role("button", name="Import zip")
    expect(go).to_be_enabled(timeout=180_000)  # the server has the file and the page saw it
    wait_idle(page, timeout=120)
    page.wait_for_timeout(3000)  # any rerun the upload caused has run by now
    wait_idle(page, timeout=120)
    assert zip_uploader(page).get_by_text(big.name).count() == 1, "the upload was dropped"
    assert go.is_enabled()
    assert_no_exception(page)
    screenshot(page, "datasets-large-upload")

    # An import runs in the background: leave the page, reload, come back, it has finished.
    many = many_zip(tmp_path / "many.zip")
    zip_uploader(page).locator("input[type=file]").set_input_files(many)
    expect(zip_uploader(page).get_by_text(many.name)).to_be_visible(timeout=60_000)
    name_box = page.get_by_role("textbox", name="Dataset name").first
    # The name's rule is there before any submit (the label's help), and a URL typed into the
    # name is shown as text in the error, never as a link.
    zip_form = page.locator("[data-testid='stTextInput']").filter(has_text="Dataset name").first
    zip_form.locator("[data-testid='stTooltipIcon']").hover()
    expect(page.get_by_text("1-64 letters, digits").first).to_be_visible()
    name_box.fill("https://example.com/x")
    name_box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Import zip").click()
    wait_idle(page)
    error = page.locator("[data-testid='stAlertContentError']").filter(has_text="example.com")
    expect(error.first).to_be_visible()
    assert error.first.locator("a").count() == 0, "user text rendered as a link"
    assert page.locator("a[href*='example.com']").count() == 0
    name_box.fill("many")
    name_box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Import zip").click()
    page.get_by_text(re.compile(r"Import of many is waiting|Importing many")).first.wait_for()
    sidebar_link(page, "Home").click()
    wait_idle(page)
    page.reload()
    wait_idle(page)
    sidebar_link(page, "Datasets").click()
    page.get_by_text("Imported many: 1500 images in 3 classes").wait_for(timeout=240_000)
    wait_idle(page)
    assert_no_exception(page)
    screenshot(page, "datasets-import-finished")

    # Before a run starts, the Train page says about how long it will take, and on what.
    sidebar_link(page, "Train").click()
    estimate = page.get_by_text("Estimated time:").first
    estimate.wait_for(timeout=120_000)
    assert "CPU" in estimate.inner_text(), estimate.inner_text()
    wait_idle(page)
    assert_no_exception(page)
    screenshot(page, "train-time-estimate")

    # After a recipe click, "More settings" stays open through the first change inside it.
    page.locator("[data-testid='stButton']").filter(has_text="Quick on a CPU").first \
        .get_by_role("button").click()
    wait_idle(page)
    more = page.locator("[data-testid='stExpander']").filter(has_text="More settings").first
    more.locator("summary").click()
    wait_idle(page)
    assert more.locator("details").get_attribute("open") is not None
    more.locator("[data-testid='stNumberInputStepUp']").first.click()
    wait_idle(page)
    page.wait_for_timeout(1000)
    wait_idle(page)
    assert more.locator("details").get_attribute("open") is not None, "it folded shut"
    page.reload()  # a fresh session: the recipe's settings are not the timm run's
    wait_idle(page)
    page.get_by_text("Estimated time:").first.wait_for(timeout=120_000)
    wait_idle(page)

    # A timm architecture starts from a weights file on this machine, and trains.
    weights = timm_weights(tmp_path / "test_resnet.safetensors")
    page.locator("[data-testid='stButtonGroup']").get_by_text("timm architecture").click()
    wait_idle(page)
    choose(page, re.compile(r"^Architecture"), "test_resnet")
    choose(page, re.compile(r"^Start from weights"), "A weights file on this machine")
    path_box = page.get_by_role("textbox", name=re.compile(r"^Weights file"))
    path_box.fill(str(weights))
    path_box.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Start training").click()
    monkeypatch.setenv("CNN_STUDIO_HOME", str(server.home))  # read the server's store here
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    run = finished_run("test_resnet")
    assert run["status"] == "completed", run.get("error")
    assert run["config"]["weights"] == str(weights)
    assert_no_exception(page)

    # Classify's latency is the median of several calls, with their spread.
    picture = tmp_path / "grey.png"
    picture.write_bytes(png((120, 120, 120), 32))
    sidebar_link(page, "Classify").click()
    wait_idle(page, timeout=120)
    choose_file(page, "Images to classify", picture)
    latency = page.get_by_text(re.compile(r"predicted in .*median of \d+, .*–")).first
    latency.wait_for(timeout=120_000)
    wait_idle(page, timeout=120)
    assert_no_exception(page)
    screenshot(page, "classify-latency")

    # Classify many: choosing a new zip clears the previous zip's result.
    page.get_by_role("tab", name="Classify many").click()
    wait_idle(page)
    many_box = uploader(page, "A zip of images")
    many_box.locator("input[type=file]").set_input_files(small)
    expect(many_box.get_by_text(small.name)).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Classify all").click()
    classified = page.locator("[data-testid='stMetric']").filter(has_text="Images classified")
    expect(classified.first).to_be_visible(timeout=120_000)
    wait_idle(page, timeout=120)
    other = small_zip(tmp_path / "colours-again.zip", per_class=4)
    many_box.locator("input[type=file]").set_input_files(other)
    expect(many_box.get_by_text(other.name)).to_be_visible(timeout=60_000)
    wait_idle(page)
    page.wait_for_timeout(1000)
    wait_idle(page)
    assert classified.count() == 0, "the previous zip's result is still on screen"
    assert_no_exception(page)

    assert not deprecation_warnings(server.log)


def timm_weights(path: Path) -> Path:
    """A timm checkpoint on disk, as a user would bring one (no download)."""
    import timm
    from safetensors.torch import save_file

    save_file(timm.create_model("test_resnet").state_dict(), str(path))
    return path


def choose(page, label, option: str) -> None:
    """Pick `option` in the select box labelled `label`, by typing as a person would."""
    box = page.get_by_role("combobox", name=label).first
    box.click()
    page.keyboard.type(option)
    page.get_by_role("option", name=option, exact=True).first.click()
    wait_idle(page)


def finished_run(model: str, timeout_s: float = 300) -> dict:
    """The run of `model` once the worker has finished it (the store, read from here)."""
    import time

    from core.store import Store

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [run for run in Store().list_runs() if run["model"] == model]
        if runs and runs[0]["status"] not in ("queued", "running"):
            return Store().get_run(runs[0]["run_id"])
        time.sleep(1)
    raise AssertionError(f"no finished {model} run within {timeout_s:.0f} s")


def noise_zip(path: Path, per_class: int = 20) -> Path:
    """Three classes of random-noise PNGs under a camera-roll folder: a model cannot learn them,
    so every run makes mistakes to look at, and each image keeps a path a person would know."""
    rng = np.random.default_rng(1)
    with zipfile.ZipFile(path, "w") as archive:
        for name in ("cats", "dogs", "birds"):
            for index in range(per_class):
                pixels = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="PNG")
                archive.writestr(f"holiday/{name}/IMG_{index:04d}.png", buffer.getvalue())
    return path


@pytest.fixture
def rough_app(prepared_home: Path, tmp_path: Path):
    """A workspace with a dataset imported from a zip and one run trained on it."""
    from core.config import TrainConfig
    from core.data.catalog import import_path
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    import_path(noise_zip(tmp_path / "holiday.zip"), "holiday")
    store = Store()
    run_id = new_run(TrainConfig(data="holiday", model="tiny-cnn", epochs=2, seed=0,
                                 device="cpu", name="prepared"), store, status="running")
    assert execute_run(run_id, store)["status"] == "completed"
    server = Server(prepared_home, tmp_path / "streamlit.log")
    try:
        yield server.start(), run_id
    finally:
        server.stop()
        kill_our_workers(prepared_home)


def significant_digits(value: str) -> int:
    return len(value.lower().split("e")[0].replace(".", "").replace("-", "").lstrip("0"))


def heatmaps(page) -> list[dict]:
    """Each heatmap on the page: its axes' labels and the numbers written in its cells (the SVG
    plotly drew, as a person sees it)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .filter(plot => plot.querySelector('.heatmaplayer .hm'))
        .map(plot => ({
            x: Array.from(plot.querySelectorAll('.xtick text')).map(t => t.textContent),
            y: Array.from(plot.querySelectorAll('.ytick text')).map(t => t.textContent),
            font: parseFloat(plot.querySelector('.xtick text')?.style.fontSize || '0'),
            cells: Array.from(plot.querySelectorAll('.heatmaplayer text')).map(t => t.textContent),
        }))""")


def tables_fit(page) -> list[tuple[int, int]]:
    """(scroll width, visible width) of every table: equal when no column is cut off."""
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        "[data-testid='stDataFrame'] .dvn-scroller")).map(s => [s.scrollWidth, s.clientWidth])""")


def download(page, container, button: str):
    with page.expect_download() as caught:
        container.get_by_role("button", name=button).click()
    return caught.value


def saved(download, folder: Path) -> Path:
    path = folder / download.suggested_filename
    download.save_as(path)
    return path


def test_the_rough_edges_a_new_user_sees(rough_app, page, tmp_path: Path) -> None:
    url, prepared = rough_app
    from core.data.dataset import load_dataset
    from core.store import Store

    # The zip tab shows an archive, not a folder.
    open_page(page, f"{url}/datasets")
    zip_tab = page.get_by_role("tab", name=re.compile("Zip file"))
    assert zip_tab.first.get_by_role("img").get_attribute("aria-label") == "archive icon"

    # "Use the suggested rate" writes two significant digits; a recipe changed says so.
    sidebar_link(page, "Train").click()
    wait_idle(page, timeout=120)
    page.locator("[data-testid='stButton']").filter(has_text="Quick on a CPU").first \
        .get_by_role("button").click()
    wait_idle(page)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="Run the LR range test").click()
    use = page.get_by_role("button", name=re.compile(r"^Use the suggested rate"))
    use.wait_for(timeout=180_000)
    use.click()
    wait_idle(page)
    rate = page.get_by_role("spinbutton", name="Peak learning rate").input_value()
    assert 1 <= significant_digits(rate) <= 2, rate
    page.get_by_role("button", name="Start training").click()
    wait_idle(page)
    run = finished_run("tiny-bn-pooled")
    assert run["status"] == "completed", run.get("error")
    changed = run["config"]["extra"]["recipe_changed"]
    assert {"epochs", "lr"} <= set(changed), changed
    open_page(page, f"{url}/runs?run_pick={run['run_id']}")
    expect(page.get_by_text(re.compile(r"recipe cpu-quick \(modified: .*epochs")).first) \
        .to_be_visible()
    assert all(scroll <= width + 1 for scroll, width in tables_fit(page)), tables_fit(page)
    assert_no_exception(page)
    screenshot(page, "runs-recipe-modified")

    # Compare: both runs' confusion matrices and their difference, every label, every count.
    open_page(page, f"{url}/compare?runs={prepared}&runs={run['run_id']}")
    page.get_by_text("What changed, image by image").wait_for(timeout=180_000)
    wait_idle(page)
    classes = load_dataset("holiday").classes
    page.wait_for_function(  # plotly draws each chart after Streamlit has sent it
        "() => document.querySelectorAll('.js-plotly-plot .heatmaplayer .hm').length >= 3",
        timeout=60_000)
    matrices = heatmaps(page)
    assert len(matrices) >= 3, matrices
    for matrix in matrices[:3]:
        assert sorted(matrix["x"]) == sorted(matrix["y"]) == sorted(classes), matrix
        assert len(matrix["cells"]) == len(classes) ** 2, matrix
        assert matrix["font"] >= 9, matrix
    assert all(scroll <= width + 1 for scroll, width in tables_fit(page)), tables_fit(page)
    assert_no_exception(page)
    screenshot(page, "compare-matrices")

    # Export in two formats: each card downloads under its own name; then import one back.
    open_page(page, f"{url}/classify")
    page.get_by_role("tab", name=re.compile("Export")).click()
    wait_idle(page)
    cards: dict = {}
    for label, fmt in (("ONNX", "onnx"), ("safetensors", "safetensors")):
        page.locator("[data-testid='stButtonGroup']").get_by_text(label, exact=False).first \
            .click()
        wait_idle(page)
        page.get_by_role("button", name="Export", exact=True).click()
        page.get_by_text(re.compile(rf"Exported .*\.{fmt}\.")).first.wait_for(timeout=180_000)
        wait_idle(page, timeout=120)
    rows = page.locator("[data-testid='stHorizontalBlock']")
    for fmt in ("onnx", "safetensors"):
        cards[fmt] = download(page, rows.filter(has_text=re.compile(rf"\.{fmt} ·")).last, "Card")
    names = {fmt: card.suggested_filename for fmt, card in cards.items()}
    assert names["onnx"].endswith(".onnx.card.json"), names
    assert names["safetensors"].endswith(".safetensors.card.json"), names
    weights = saved(download(page, rows.filter(has_text=re.compile(r"\.safetensors ·")).last,
                             "Model"), tmp_path)
    card_path = saved(cards["safetensors"], tmp_path)
    page.get_by_role("tab", name=re.compile("Import a model")).click()
    wait_idle(page)
    choose_file(page, "Weights (.safetensors)", weights)
    choose_file(page, "Model card (.json)", card_path)
    expect(page.get_by_role("button", name="Import", exact=True)).to_be_enabled(timeout=60_000)
    wait_idle(page)
    page.get_by_role("button", name="Import", exact=True).click()
    page.get_by_text(re.compile("as a new run")).first.wait_for(timeout=120_000)
    imported = Store().list_runs()[0]
    assert imported["run_id"] not in (prepared, run["run_id"])
    open_page(page, f"{url}/runs?run_pick={imported['run_id']}")
    for label in ("Test accuracy", "Best val accuracy"):
        metric = page.locator("[data-testid='stMetric']").filter(has_text=label).first
        value = metric.locator("[data-testid='stMetricValue']").inner_text()
        assert re.fullmatch(r"\d+(\.\d)?%", value), (label, value)
    main = page.inner_text("[data-testid='stMain']")
    assert "None" not in main and "0/1" not in main, main[:3000]
    assert_no_exception(page)
    screenshot(page, "runs-imported-model")

    # Mistakes: the relabel choice reads "→ class", and the list names the original file.
    open_page(page, f"{url}/mistakes?run={prepared}")
    page.locator("[data-testid='stButtonGroup']").get_by_text("Class gallery").click()
    wait_idle(page, timeout=120)
    mark = page.get_by_role("combobox", name="Mark").first
    assert mark.input_value() == "keep"
    mark.click()
    relabel = page.get_by_role("option", name=re.compile(r"^→ "))
    relabel.first.wait_for()
    relabel.first.click()
    wait_idle(page)
    listed = page.locator("[data-testid='stDataFrame']").filter(
        has=page.locator("[role=columnheader]", has_text="original file")).first
    listed.wait_for(timeout=30_000)
    sources = {item.source for item in load_dataset("holiday").items}
    shown = [cell.text_content() for cell in listed.locator("[role=gridcell]").all()]
    assert any(text in sources for text in shown), shown
    assert not any(text.startswith("images/") for text in shown), shown
    assert_no_exception(page)
    screenshot(page, "mistakes-relabel")
