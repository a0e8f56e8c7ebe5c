"""Dataset imports as background jobs (core.runs.imports): queued, run by the import worker
with progress, cancelled, interrupted by a dead worker, refused before staging."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from upload_files import png, zip_bytes

from core.data.dataset import DatasetError, list_datasets
from core.runs import imports
from core.store import Store
from core.workspace import REPO_ROOT, this_host


@pytest.fixture
def no_spawn(studio_home, monkeypatch):
    monkeypatch.setattr(imports, "ensure_import_worker", lambda: False)
    return studio_home


def pets_zip(per_class: int = 6, junk: bool = True) -> io.BytesIO:
    files = {f"{cls}/{i}.png": png((40 * i, 100, 200 if cls == "cat" else 20))
             for cls in ("cat", "dog") for i in range(per_class)}
    if junk:
        files["cat/notes.txt"] = b"not an image"
    return io.BytesIO(zip_bytes(files))


def test_a_queued_zip_import_is_run_by_the_worker_with_its_report(no_spawn) -> None:
    job_id = imports.submit_zip(pets_zip(), "pets")
    store = Store()
    assert store.get_import(job_id)["status"] == "queued"
    assert list_datasets() == []
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 1
    job = store.get_import(job_id)
    assert job["status"] == "completed", job["error"]
    assert job["summary"]["kept"] == 12 and len(job["summary"]["dropped"]) == 1
    assert job["done"] == job["total"] > 0
    assert list_datasets() == ["pets"]
    assert not imports.staged_dir(job_id).exists(), "the staged upload is removed"


def test_entries_keep_their_names_exactly(no_spawn) -> None:
    entries = [(f"{cls}/ä {i}.png", png((10 * i, 50, 90 if cls == "a" else 200)))
               for cls in ("a", "b") for i in range(5)]
    job_id = imports.submit_entries(entries, "letters")
    imports.work_imports(idle_exit_s=0, poll_s=0)
    job = Store().get_import(job_id)
    assert job["status"] == "completed", job["error"]
    assert sorted(job["summary"]["classes"]) == ["a", "b"]


def test_cancelling_a_running_import_leaves_no_dataset(no_spawn) -> None:
    store = Store()
    job_id = imports.submit_zip(pets_zip(per_class=30, junk=False), "pets")
    job = store.claim_next_import(worker_pid=1, worker_host=this_host())
    imports.cancel_import(job_id)
    assert imports.run_import(job, store) == "cancelled"
    assert store.get_import(job_id)["error"] == imports.CANCELLED
    assert list_datasets() == []
    assert not imports.staged_dir(job_id).exists()


def test_cancelling_a_queued_import_ends_it_at_once(no_spawn) -> None:
    job_id = imports.submit_demo("shapes", "shapes")
    imports.cancel_import(job_id)
    assert Store().get_import(job_id)["status"] == "cancelled"
    assert imports.work_imports(idle_exit_s=0, poll_s=0) == 0


def test_an_import_whose_worker_died_is_interrupted(no_spawn) -> None:
    store = Store()
    imports.submit_zip(pets_zip(), "pets")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.claim_next_import(worker_pid=gone.pid, worker_host=this_host())
    jobs = imports.keep_imports_moving(store)
    assert [job["status"] for job in jobs] == ["interrupted"]
    assert "worker process is gone" in jobs[0]["error"]


def test_a_broken_zip_or_a_taken_name_is_refused_before_anything_is_queued(no_spawn) -> None:
    with pytest.raises(DatasetError, match="not a readable zip"):
        imports.submit_zip(io.BytesIO(b"definitely not a zip"), "broken")
    imports.submit_zip(pets_zip(), "pets")
    with pytest.raises(DatasetError, match="already under way"):
        imports.submit_zip(pets_zip(), "pets")
    imports.work_imports(idle_exit_s=0, poll_s=0)
    with pytest.raises(DatasetError, match="already exists"):
        imports.submit_demo("shapes", "pets")
    with pytest.raises(DatasetError):
        imports.submit_zip(pets_zip(), "no/slashes")
    assert len(Store().list_imports()) == 1


def test_a_failed_import_says_why(no_spawn) -> None:
    lonely = io.BytesIO(zip_bytes({f"cat/{i}.png": png((i, 2, 3)) for i in range(5)}))
    job_id = imports.submit_zip(lonely, "one-class")
    imports.work_imports(idle_exit_s=0, poll_s=0)
    job = Store().get_import(job_id)
    assert job["status"] == "failed" and "class" in job["error"]


def test_dismissed_imports_leave_the_list(no_spawn) -> None:
    job_id = imports.submit_zip(pets_zip(), "pets")
    imports.work_imports(idle_exit_s=0, poll_s=0)
    imports.dismiss_import(job_id)
    assert imports.keep_imports_moving(Store()) == []


def test_time_left_comes_from_the_pace_so_far() -> None:
    job = {"status": "running", "done": 250, "total": 1000, "started_at": 100.0}
    assert imports.seconds_left(job, now=110.0) == pytest.approx(30.0)
    assert imports.seconds_left(job | {"done": 0}, now=110.0) is None
    assert imports.seconds_left(job | {"status": "queued"}, now=110.0) is None


def test_the_import_worker_command_runs_a_queued_import(no_spawn) -> None:
    job_id = imports.submit_demo("shapes", "shapes")
    subprocess.run([sys.executable, "-m", "core", "worker", "--imports", "--idle-exit", "0"],
                   cwd=REPO_ROOT, check=True, timeout=300, capture_output=True)
    assert Store().get_import(job_id)["status"] == "completed"
    assert list_datasets() == ["shapes"]
