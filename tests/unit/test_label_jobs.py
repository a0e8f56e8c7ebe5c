"""The label-error search as a background job (core.analysis.label_jobs): queued, run by the
import worker with fold/epoch progress, cancelled, failing with its reason, and kept off the
Datasets page's import notices."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.analysis import label_jobs
from core.analysis.label_jobs import KIND, progress_text, saved_label_issues
from core.cli.runs import job_runners
from core.data.build import DatasetBuilder
from core.data.dataset import DatasetError, load_dataset
from core.runs import imports
from core.store import Store
from core.workspace import this_host


@pytest.fixture
def no_spawn(studio_home, monkeypatch):
    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)
    monkeypatch.setattr(label_jobs, "ensure_import_worker", lambda: False)
    return studio_home


def tiny_dataset(name: str = "halves", per_class: int = 12) -> None:
    """Two classes told apart by which half is bright, 8x8 grey."""
    rng = np.random.default_rng(0)
    builder = DatasetBuilder(name, ["left", "right"], origin="test")
    for index in range(2 * per_class):
        label = index % 2
        pixels = rng.integers(0, 50, (8, 8)).astype(np.uint8)
        pixels[:, 4 * label:4 * label + 4] += 180
        builder.add(Image.fromarray(pixels), label, f"img/{index}")
    builder.finish(val=0.2, test=0.2, seed=0)


def test_a_queued_search_is_run_by_the_worker_with_fold_and_epoch_progress(no_spawn) -> None:
    tiny_dataset()
    job_id = label_jobs.submit_label_issues("halves", folds=2, epochs=1, device="cpu")
    store = Store()
    job = store.get_import(job_id)
    assert job["status"] == "queued" and job["kind"] == KIND
    with pytest.raises(DatasetError, match="already under way"):
        label_jobs.submit_label_issues("halves", folds=2, epochs=1, device="cpu")
    assert imports.work_imports(idle_exit_s=0, poll_s=0, runners=job_runners()) == 1
    job = store.get_import(job_id)
    assert job["status"] == "completed", job["error"]
    assert job["done"] == job["total"] == 2  # 2 folds × 1 epoch
    assert job["summary"]["images"] == 24
    result = saved_label_issues(load_dataset("halves"))
    assert result is not None and result["folds"] == 2 and result["epochs"] == 1
    assert job["summary"]["issues"] == len(result["issues"])
    assert [j["job_id"] for j in label_jobs.label_jobs("halves", store)] == [job_id]
    assert imports.keep_imports_moving(store) == [], "not an import notice on the Datasets page"


def test_progress_names_the_fold_and_epoch() -> None:
    job = {"request": {"folds": 5}, "done": 0, "total": 0}
    assert progress_text(job) == "starting"
    assert progress_text({**job, "done": 7, "total": 30}) == "fold 2 of 5, epoch 2 of 6"
    assert progress_text({**job, "done": 30, "total": 30}).startswith("all 5 folds")


def test_cancelling_a_running_search_keeps_no_result(no_spawn) -> None:
    tiny_dataset()
    store = Store()
    job_id = label_jobs.submit_label_issues("halves", folds=2, epochs=1, device="cpu")
    job = store.claim_next_import(worker_pid=1, worker_host=this_host())
    imports.cancel_import(job_id)
    assert imports.run_import(job, store, job_runners()) == "cancelled"
    assert saved_label_issues(load_dataset("halves")) is None


def test_a_search_that_cannot_run_fails_and_says_why(no_spawn) -> None:
    tiny_dataset(per_class=4)
    job_id = label_jobs.submit_label_issues("halves", folds=5, epochs=1, device="cpu")
    imports.work_imports(idle_exit_s=0, poll_s=0, runners=job_runners())
    job = Store().get_import(job_id)
    assert job["status"] == "failed" and "at least 5 images" in job["error"]


def test_a_worker_without_the_runner_fails_the_job_instead_of_hanging(no_spawn) -> None:
    tiny_dataset()
    job_id = label_jobs.submit_label_issues("halves", folds=2, epochs=1)
    imports.work_imports(idle_exit_s=0, poll_s=0)
    assert "cannot run" in Store().get_import(job_id)["error"]


def test_a_missing_dataset_is_refused_before_queueing(no_spawn) -> None:
    with pytest.raises(DatasetError):
        label_jobs.submit_label_issues("nope")
    assert Store().list_imports() == []
