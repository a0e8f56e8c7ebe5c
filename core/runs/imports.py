"""Dataset imports as background jobs, like training runs.

The page stages what the user gave (the uploaded zip, the files of a folder or of the classes
built one by one, or the name of a built-in dataset) in the workspace's `imports/` folder and
queues a row in the store's imports table. `python -m core worker --imports` (one per
workspace under its own lock, started on demand in its own session, so it outlives the browser
tab and the Streamlit server) claims queued imports one at a time and runs each, writing how
many files it has looked at; the page polls that. Cancelling asks the worker to stop at its
next progress report; the dataset is written all or nothing, so a cancelled, failed or killed
import leaves no dataset behind. An import whose worker died is `interrupted`.

Other background jobs share the table and the worker: a job of another kind (the Error
analysis page's label-error search, core.analysis.label_jobs) names the dataset it reads and
is run by the runner the worker was given for its kind (`python -m core worker --imports`
passes them; core.runs never imports the packages above it).

Torch-free, like core.runs.queue: the pages submit and poll without loading it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

from core.data import catalog
from core.data.archive import open_zip
from core.data.dataset import Dataset, DatasetError, list_datasets
from core.data.ingest import IngestLimits, check_request
from core.data.layouts import compile_pattern
from core.runs.queue import STARTUP_SECONDS, worker_alive, worker_lock
from core.store import Store
from core.workspace import REPO_ROOT, home, logs_dir, process_alive, this_host

log = logging.getLogger(__name__)

ACTIVE_IMPORTS = ("queued", "running")
ENDED_IMPORTS = ("completed", "failed", "cancelled", "interrupted")
PROGRESS_EVERY_S = 0.5  # how often a running import writes its progress (and reads cancel)
RECENT_S = 24 * 3600.0  # imports the Datasets page lists until their notice is dismissed
CANCELLED = "Cancelled before it finished; no dataset was made."

IMPORT_KINDS = ("zip", "entries", "demo")  # the jobs that make a dataset

Progress = Callable[[int, int], None]
Runner = Callable[[dict, Progress], dict]  # (claimed job, progress) → its summary


class ImportCancelled(Exception):
    """Raised from the progress report when the user asked to cancel the import."""


# Where things live ----------------------------------------------------------------------------

def staged_dir(job_id: str) -> Path:
    return home() / "imports" / job_id


def lock_path() -> Path:
    return home() / "import-worker.lock"


def starting_marker() -> Path:
    return home() / "import-worker.starting"


# Submitting (the pages, the command line) -----------------------------------------------------

def check_new(name: str, val: float, test: float, store: Store) -> None:
    """Fail before anything is staged: a bad name or split, a taken name, or an import into
    that name already under way."""
    check_request(name, val, test)
    if name in list_datasets():
        raise DatasetError(f"A dataset named {name!r} already exists. Choose another name or "
                           "delete it first.")
    if any(job["name"] == name for job in active_imports(store)):
        raise DatasetError(f"An import into {name!r} is already under way; wait for it or "
                           "choose another name.")


def submit_zip(upload: BinaryIO, name: str, *, val: float = 0.1, test: float = 0.1,
               seed: int = 0, label_pattern: str | None = None, store: Store | None = None,
               start_worker: bool = True) -> str:
    """Stage an open zip (an upload) and queue its import; returns the job id.
    `label_pattern` (a regex whose first group is the label, as `data import --label-pattern`)
    reads the labels from the file names."""
    store = store or Store()
    check_new(name, val, test, store)
    compile_pattern(label_pattern)  # a bad pattern fails here, before anything is staged
    open_zip(upload, "The uploaded zip", IngestLimits().max_entries).close()  # not a zip: now
    upload.seek(0)
    job_id = new_job_id()
    with open(stage(job_id) / "upload.zip", "wb") as out:
        shutil.copyfileobj(upload, out, 1 << 20)
    request = {"val": val, "test": test, "seed": seed}
    if label_pattern:
        request["label_pattern"] = label_pattern
    return queued(store, job_id, name, "zip", request, start_worker)


def submit_entries(entries: Iterable[tuple[str, bytes]], name: str, *, val: float = 0.1,
                   test: float = 0.1, seed: int = 0, store: Store | None = None,
                   start_worker: bool = True) -> str:
    """Stage ("class/file", bytes) pairs (a folder upload, classes built one by one) and queue
    their import; returns the job id."""
    store = store or Store()
    check_new(name, val, test, store)
    job_id = new_job_id()
    with zipfile.ZipFile(stage(job_id) / "entries.zip", "w", zipfile.ZIP_STORED) as archive:
        for index, (entry_name, data) in enumerate(entries):
            archive.writestr(f"{index:07d}", data)  # the name goes in the comment: verbatim
            archive.getinfo(f"{index:07d}").comment = entry_name.encode("utf-8")
    return queued(store, job_id, name, "entries", {"val": val, "test": test, "seed": seed},
                  start_worker)


def submit_demo(kind: str, name: str, *, store: Store | None = None,
                start_worker: bool = True) -> str:
    """Queue writing built-in dataset `kind` as dataset `name`; returns the job id."""
    store = store or Store()
    if kind not in catalog.demo_kinds():
        raise DatasetError(f"Unknown demo {kind!r}; choose one of "
                           f"{', '.join(catalog.demo_kinds())}.")
    check_new(name, 0.1, 0.1, store)
    job_id = new_job_id()
    stage(job_id)
    return queued(store, job_id, name, "demo", {"demo": kind}, start_worker)


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)


def stage(job_id: str) -> Path:
    folder = staged_dir(job_id)
    folder.mkdir(parents=True, exist_ok=False)
    return folder


def queued(store: Store, job_id: str, name: str, kind: str, request: dict,
           start_worker: bool) -> str:
    store.create_import(job_id, name, kind, request)
    if start_worker:
        ensure_import_worker()
    return job_id


def cancel_import(job_id: str, store: Store | None = None) -> None:
    (store or Store()).request_import_cancel(job_id)


def dismiss_import(job_id: str, store: Store | None = None) -> None:
    """Close an ended import's notice on the Datasets page."""
    (store or Store()).update_import(job_id, dismissed=1)


def active_imports(store: Store) -> list[dict]:
    return [job for job in store.list_imports(time.time() - RECENT_S)
            if job["status"] in ACTIVE_IMPORTS]


def keep_imports_moving(store: Store, kinds: Collection[str] = IMPORT_KINDS) -> list[dict]:
    """What the Datasets page does on every poll: imports whose worker died become
    `interrupted`, a worker is started when imports wait with none; returns the recent jobs of
    these kinds whose notice is still open, newest first."""
    store.interrupt_dead_imports(this_host(), process_alive)
    recent = store.list_imports(time.time() - RECENT_S)
    if any(job["status"] == "queued" for job in recent):
        ensure_import_worker()
    return [job for job in recent if not job["dismissed"] and job["kind"] in kinds]


def seconds_left(job: dict, now: float | None = None) -> float | None:
    """The time a running import still needs, from its pace so far (None before it has one)."""
    done, total, started = job["done"], job["total"], job["started_at"]
    if job["status"] != "running" or not started or done <= 0 or total <= done:
        return None
    return ((now or time.time()) - started) / done * (total - done)


def ensure_import_worker() -> bool:
    """Start a detached import worker unless one runs or is starting; True if one started."""
    if worker_alive(lock_path()) or worker_starting():
        return False
    starting_marker().write_text(str(time.time()))
    with open(logs_dir() / "import-worker.log", "a") as log_file:
        subprocess.Popen(
            [sys.executable, "-m", "core", "worker", "--imports"], stdout=log_file,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            cwd=REPO_ROOT, env=os.environ | {"CNN_STUDIO_HOME": str(home())})
    return True


def worker_starting() -> bool:
    try:
        return time.time() - float(starting_marker().read_text()) < STARTUP_SECONDS
    except (OSError, ValueError):
        return False


# The worker's side ----------------------------------------------------------------------------

def work_imports(*, idle_exit_s: float = 60.0, poll_s: float = 0.5,
                 max_jobs: int | None = None, runners: Mapping[str, Runner] | None = None) -> int:
    """Claim and run queued imports until idle for idle_exit_s; returns how many it ran, or -1
    when another import worker holds the workspace. `runners` run the jobs of other kinds."""
    with worker_lock(path=lock_path()) as mine:
        if not mine:
            return -1
        starting_marker().unlink(missing_ok=True)
        store = Store()
        store.interrupt_dead_imports(this_host(), process_alive)
        done, idle_since = 0, time.monotonic()
        while max_jobs is None or done < max_jobs:
            job = store.claim_next_import(os.getpid(), this_host())
            if job is None:
                if time.monotonic() - idle_since > idle_exit_s:
                    break
                time.sleep(poll_s)
                continue
            run_import(job, store, runners)
            done += 1
            idle_since = time.monotonic()
        return done


def run_import(job: dict, store: Store, runners: Mapping[str, Runner] | None = None) -> str:
    """Run one claimed import (or a job of a kind `runners` knows) to its end; returns its
    final status."""
    job_id, kind = job["job_id"], job["kind"]
    log.info("running %s job on %s (%s)", kind, job["name"], job_id)
    fields: dict = {}
    try:
        progress = progress_report(job_id, store)
        if kind in IMPORT_KINDS:
            summary = do_import(job, staged_dir(job_id), progress).summary()
        elif runners and kind in runners:
            summary = runners[kind](job, progress)
        else:
            raise ValueError(f"This worker cannot run {kind!r} jobs.")
        fields = {"status": "completed", "summary": summary}
    except ImportCancelled:
        fields = {"status": "cancelled",
                  "error": CANCELLED if kind in IMPORT_KINDS else "Cancelled before it finished."}
    except (ValueError, OSError, zipfile.BadZipFile) as error:  # DatasetError is a ValueError
        fields = {"status": "failed", "error": str(error)}
    except Exception as error:  # noqa: BLE001 - the page says it failed, the log says why
        log.exception("import %s failed", job_id)
        fields = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
    finally:
        shutil.rmtree(staged_dir(job_id), ignore_errors=True)
        store.update_import(job_id, finished_at=time.time(), **fields)
    return fields["status"]


def progress_report(job_id: str, store: Store) -> Progress:
    """The importer's progress callback: writes done/total every PROGRESS_EVERY_S and raises
    ImportCancelled once the user has asked to cancel."""
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and 0 < done < total:
            return
        last[0] = now
        if store.import_progress(job_id, done, total):
            raise ImportCancelled

    return report


def do_import(job: dict, folder: Path, progress: Progress) -> Dataset:
    request, name = job["request"], job["name"]
    split = {"val": request.get("val", 0.1), "test": request.get("test", 0.1),
             "seed": request.get("seed", 0)}
    if job["kind"] == "zip":
        with open(folder / "upload.zip", "rb") as upload:  # a file object: "the uploaded zip"
            return catalog.import_path(upload, name, progress=progress,
                                       label_pattern=request.get("label_pattern"), **split)
    if job["kind"] == "entries":
        with zipfile.ZipFile(folder / "entries.zip") as archive:
            entries = [(info.comment.decode("utf-8"), archive.read(info))
                       for info in archive.infolist()]
        return catalog.import_uploads(entries, name, progress=progress, **split)
    if job["kind"] == "demo":
        return catalog.add_demo(request["demo"], name, progress=progress)
    raise ValueError(f"Unknown import kind {job['kind']!r}.")
