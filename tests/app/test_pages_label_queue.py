"""The Error analysis page's "Likely label errors": the search queued through the background
worker with its progress, a failure saying why, and the queue (worst first) whose accept and drop
choices save a new dataset version, the original untouched."""

from __future__ import annotations

import numpy as np
import pytest
from app_pages import open_page, texts
from PIL import Image

from core.analysis import label_jobs
from core.analysis.label_jobs import KIND, result_path
from core.cli.runs import job_runners
from core.data.build import DatasetBuilder
from core.data.dataset import list_datasets, load_dataset
from core.durable import write_json_atomic
from core.runs import imports
from core.store import Store


@pytest.fixture
def halves(studio_home, monkeypatch):
    """Dataset `halves` (2 classes, 12 images each); no worker process is started."""
    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)
    monkeypatch.setattr(label_jobs, "ensure_import_worker", lambda: False)
    rng = np.random.default_rng(0)
    builder = DatasetBuilder("halves", ["left", "right"], origin="test")
    for index in range(24):
        label = index % 2
        pixels = rng.integers(0, 50, (8, 8)).astype(np.uint8)
        pixels[:, 4 * label:4 * label + 4] += 180
        builder.add(Image.fromarray(pixels), label, f"img/{index}")
    return builder.finish(val=0.2, test=0.2, seed=0)






def plant_result(dataset) -> list[dict]:
    """A saved result naming items 5, 2 and 9 as likely errors, worst first."""
    issues = []
    for index, score in ((5, 0.01), (2, 0.05), (9, 0.2)):
        item = dataset.items[index]
        given = dataset.classes[item.label]
        issues.append({"index": index, "file": item.file, "source": item.source, "given": given,
                       "suggested": dataset.classes[1 - item.label], "score": score})
    write_json_atomic(result_path(dataset), {
        "data": dataset.name, "content_hash": dataset.content_hash, "folds": 5,
        "model": "tiny-cnn", "epochs": 6, "images": len(dataset.items),
        "out_of_fold_acc": 0.9, "issues": issues})
    return issues


def test_the_button_queues_the_search_and_the_worker_s_result_becomes_the_queue(halves) -> None:
    at = open_page("pages/mistakes.py")
    assert "No search for likely label errors" in texts(at.info)
    at.number_input(key="labels_folds").set_value(2)
    at.number_input(key="labels_epochs").set_value(1)
    at.button(key="labels_find").click().run()
    assert not at.exception, at.exception
    [job] = Store().list_imports()
    assert job["kind"] == KIND and job["status"] == "queued"
    assert job["request"]["folds"] == 2 and job["request"]["epochs"] == 1
    assert "waiting for the background worker" in texts(at.info)
    assert "labels_find" not in [button.key for button in at.button], "one search at a time"
    store = Store()
    store.claim_next_import(worker_pid=1, worker_host="elsewhere")  # a worker elsewhere
    store.import_progress(job["job_id"], 1, 2)
    at.run()
    assert "fold 2 of 2, epoch 1 of 1" in at.get("progress")[0].proto.text
    store.update_import(job["job_id"], status="queued")
    assert imports.work_imports(idle_exit_s=0, poll_s=0, runners=job_runners()) == 1
    at.run()
    assert not at.exception, at.exception
    assert "The search finished" in texts(at.success)
    assert "likely label errors in 24 images" in texts(at.caption)


def test_a_failed_search_says_why_and_a_running_one_can_be_cancelled(halves) -> None:
    job_id = label_jobs.submit_label_issues("halves", folds=2, epochs=1)
    at = open_page("pages/mistakes.py")
    at.button(key=f"labels_cancel_{job_id}").click().run()
    assert Store().get_import(job_id)["status"] == "cancelled"
    assert "was cancelled" in texts(at.warning)
    failed = label_jobs.submit_label_issues("halves", folds=2, epochs=1)
    Store().update_import(failed, status="failed", error="Every class needs at least 9 images")
    at.run()
    assert "failed: Every class needs at least 9 images" in texts(at.error)


def test_the_queue_is_worst_first_and_accept_and_drop_save_a_new_version(halves) -> None:
    issues = plant_result(halves)
    at = open_page("pages/mistakes.py")
    captions = [c for c in texts(at.caption).splitlines() if c.startswith("given")]
    assert all(f"score {issue['score']:.3f}" in line
               for issue, line in zip(issues, captions, strict=True)), captions
    assert len(at.get("image")) == 3
    worst, second, third = (issue["index"] for issue in issues)
    radios = {radio.key: radio for radio in at.radio}
    radios[label_jobs_key(worst)].set_value("accept")
    radios[label_jobs_key(second)].set_value("drop").run()
    assert not at.exception, at.exception
    at.text_input(key="labels_version_halves").input("halves-fixed")
    at.button(key="labels_save").click().run()
    assert not at.exception, at.exception
    assert "Saved dataset halves\\-fixed" in texts(at.success)
    assert "halves-fixed" in list_datasets()
    original, fixed = load_dataset("halves"), load_dataset("halves-fixed")
    assert len(original.items) == 24 and len(fixed.items) == 23
    by_source = {item.source: item for item in fixed.items}
    assert original.items[second].source not in by_source
    assert by_source[original.items[worst].source].label == 1 - original.items[worst].label
    assert by_source[original.items[third].source].label == original.items[third].label
    assert [item.label for item in load_dataset("halves").items] == [
        item.label for item in original.items], "the original is untouched"
    assert at.radio(key=label_jobs_key(worst)).value == "keep", "choices start afresh"


def label_jobs_key(index: int) -> str:
    from pages.ui.label_queue import choice_key

    return choice_key("halves", index)
