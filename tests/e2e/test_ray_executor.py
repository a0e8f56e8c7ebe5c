"""The Ray executor on a local Ray instance started here (CPU only, two CPUs): a sweep fanned
out over it through the detached worker's command line, a run whose Ray worker is killed
mid-run resuming from its checkpoint, stop reaching a remote run, and what each run asks for."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from shapes import shapes_config as two_epochs

from core.analysis.sweep import plan_sweep, submit_sweep
from core.config import TrainConfig
from core.runs import queue, ray_executor, worker
from core.runs.ray_executor import Demand, run_demand
from core.store import Store
from core.workspace import runs_dir

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 150.0  # generous: the CPU is shared; every wait ends as soon as the store says so
KILLED_RUN_EPOCHS = 30  # ~0.15 s each here: seconds of training left when the kill lands


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A local Ray instance for this module: two CPUs, a small object store, a short temp dir
    (Ray's socket paths must stay under 108 characters). Yields its address."""
    ray = pytest.importorskip("ray")  # in requirements-dev.txt; absent only in a bare install
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             object_store_memory=80 * 1024**2, _temp_dir=temp_dir)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def ray_executor_on(ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_STUDIO_EXECUTOR", "ray")
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster)


def shapes_config(**overrides) -> TrainConfig:
    return two_epochs(**({"epochs": 1} | overrides))


@pytest.fixture
def store(ray_executor_on, shapes_dataset) -> Store:
    """The workspace's SQLite store, with `shapes`, under the Ray executor."""
    return Store()


@pytest.fixture
def shared_store(store_url: str, shapes_dataset, ray_executor_on) -> Store:
    """As `store`, once on SQLite and once on PostgreSQL (conftest's store_url), the store a
    cluster of several machines would use."""
    return Store(store_url)


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = TIMEOUT_S):
    """Poll until condition() is truthy and return it; fail saying what never happened."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)
    return value


def start_dispatcher() -> threading.Thread:
    """The dispatcher in a thread of this process (attached to the module's Ray instance); it
    returns once nothing is queued or running."""
    thread = threading.Thread(target=worker.work, kwargs={"idle_exit_s": 0, "poll_s": 0.05},
                              daemon=True)
    thread.start()
    return thread


def running_past_epoch(store: Store, run_id: str, epoch: int) -> dict | None:
    """The run while it trains beyond `epoch` (its `last` checkpoint saved), else None."""
    run = store.get_run(run_id)
    return run if run["status"] == "running" and run["epoch"] >= epoch else None


def epoch_rows(store: Store, run_id: str) -> list[dict]:
    return store.metrics(run_id, names=["epoch/val_acc"])


# ------------------------------------------------------------------------------ what a run asks

def test_a_run_asks_for_its_gpus_or_a_cpu_per_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_demand({"device": "cuda"}, cluster_has_gpus=False) == Demand(cpus=1, gpus=1)
    assert run_demand({"device": "cuda", "gpus": 4}, cluster_has_gpus=True) == Demand(4, 4)
    assert run_demand({"device": "cpu", "gpus": 2}, cluster_has_gpus=True) == Demand(cpus=2)
    assert run_demand({"device": "auto"}, cluster_has_gpus=True) == Demand(cpus=1, gpus=1)
    assert run_demand({"device": "auto"}, cluster_has_gpus=False) == Demand(cpus=1)
    assert run_demand({"device": "cpu"}, cluster_has_gpus=True) == Demand(cpus=1)
    monkeypatch.setenv("CNN_STUDIO_RAY_CPUS_PER_RUN", "4")
    assert run_demand({"device": "cpu"}, cluster_has_gpus=False) == Demand(cpus=4)
    monkeypatch.setenv("CNN_STUDIO_RAY_CPUS_PER_RUN", "lots")
    with pytest.raises(ValueError, match="positive number"):
        run_demand({"device": "cpu"}, cluster_has_gpus=False)


def test_runs_fit_while_the_cluster_has_room() -> None:
    cluster = {"CPU": 2.0, "GPU": 1.0}
    assert (Demand(1) + Demand(1)).fits_in(cluster)
    assert not (Demand(1) + Demand(1) + Demand(1)).fits_in(cluster)
    assert Demand(1, 1).fits_in(cluster) and not (Demand(1, 1) + Demand(1, 1)).fits_in(cluster)
    assert not Demand(1, 1).fits_in({"CPU": 8.0})


class FakeRay:
    """Stands in for the `ray` module where only the dispatcher's decisions are under test: a
    one-node cluster of the given size that records submitted tasks and never runs them."""

    def __init__(self, resources: dict[str, float]) -> None:
        self.resources = resources
        self.submitted: list[tuple[tuple, dict]] = []
        self.cancelled: list[str] = []

    def remote(self, **_options):
        return lambda _function: FakeTask(self, {})

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": dict(self.resources)}]

    def cluster_resources(self) -> dict[str, float]:
        return dict(self.resources)

    def cancel(self, ref: str) -> None:
        self.cancelled.append(ref)


class FakeTask:
    def __init__(self, ray: FakeRay, options: dict) -> None:
        self.ray, self.resource_options = ray, options

    def options(self, **options) -> FakeTask:
        return FakeTask(self.ray, options)

    def remote(self, *args) -> str:
        self.ray.submitted.append((args, self.resource_options))
        return f"task-{len(self.ray.submitted)}"


def test_the_dispatcher_claims_queued_runs_while_the_cluster_has_room(studio_home) -> None:
    store = Store()
    run_ids = [queue.submit(shapes_config(name=f"run{i}"), store, start_worker=False)
               for i in range(3)]
    ray = FakeRay({"CPU": 2.0})
    dispatcher = ray_executor.Dispatcher(store, ray)

    assert dispatcher.claim_what_fits(limit=None) == 2
    statuses = [store.get_run(run_id)["status"] for run_id in run_ids]
    assert sorted(statuses) == ["queued", "running", "running"]
    assert [options for _, options in ray.submitted] == [{"num_cpus": 1.0, "num_gpus": 0.0}] * 2
    assert dispatcher.claim_what_fits(limit=None) == 0  # full until a task ends


def test_a_run_stopped_before_its_task_starts_is_stopped_and_cancelled(studio_home) -> None:
    store = Store()
    run_id = queue.submit(shapes_config(), store, start_worker=False)
    ray = FakeRay({"CPU": 2.0})
    dispatcher = ray_executor.Dispatcher(store, ray)
    dispatcher.claim_what_fits(limit=None)
    store.update_run(run_id, heartbeat_at=0.0)  # as if claimed long ago

    dispatcher.beat_for_waiting_runs()  # the dispatcher beats for a run its task has not started
    run = store.get_run(run_id)
    assert run["status"] == "running" and run["heartbeat_at"] > 0
    assert queue.reconcile(store) == []
    queue.stop(run_id, store)
    dispatcher.beat_for_waiting_runs()
    assert store.get_run(run_id)["status"] == "stopped"
    assert ray.cancelled == list(dispatcher.tasks)


def test_an_unknown_executor_is_refused_with_the_choices(monkeypatch, studio_home) -> None:
    monkeypatch.setenv("CNN_STUDIO_EXECUTOR", "slurm")
    with pytest.raises(ValueError, match="set it to local or ray"):
        queue.ensure_worker()
    monkeypatch.delenv("CNN_STUDIO_EXECUTOR")
    assert queue.executor() == "local"


# ------------------------------------------------------------------------------ on Ray

def test_a_sweep_fans_out_over_the_cluster_from_the_detached_worker(shared_store) -> None:
    store = shared_store
    configs = plan_sweep(shapes_config(), ["tiny-cnn", "small-cnn", "resnet9-small"])
    run_ids = submit_sweep("arch", configs, store, start_worker=False)
    # what queue.ensure_worker() spawns: the worker, here a Ray driver attached at RAY_ADDRESS
    worker = subprocess.run([sys.executable, "-m", "core", "worker", "--idle-exit", "0"],
                            cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert worker.returncode == 0, worker.stderr
    assert "worker trained 3 runs" in worker.stdout
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run["status"] == "completed", run["error"]
        assert run["worker_pid"] not in (None, os.getpid())  # trained in a Ray worker
        assert run["best_val_acc"] is not None and run["test_acc"] is not None
        assert len(epoch_rows(store, run_id)) == 1
        assert (runs_dir() / run_id / "best.safetensors").exists()
    assert {store.get_run(run_id)["model"] for run_id in run_ids} == {
        "tiny-cnn", "small-cnn", "resnet9-small"}


def test_a_run_whose_ray_worker_is_killed_resumes_from_its_checkpoint(store: Store) -> None:
    epochs = KILLED_RUN_EPOCHS
    run_id = queue.submit(shapes_config(epochs=epochs), store, start_worker=False)
    dispatcher = start_dispatcher()
    run = wait_for(lambda: running_past_epoch(store, run_id, 1), "the run is past epoch 1")
    killed_pid, killed_at = run["worker_pid"], time.time()
    os.kill(killed_pid, signal.SIGKILL)
    dispatcher.join(timeout=TIMEOUT_S)
    assert not dispatcher.is_alive(), "the dispatcher never finished"

    run = store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    assert run["worker_pid"] != killed_pid
    rows = epoch_rows(store, run_id)
    assert [row["epoch"] for row in rows] == list(range(1, epochs + 1))
    assert rows[0]["time"] < killed_at  # epoch 1 was not trained again
    log = (runs_dir() / run_id / "log.txt").read_text()
    assert f"worker process {killed_pid} died; resuming" in log
    resumed_from = int(log.split("resumed_from_epoch=")[-1].split(",")[0].split()[0])
    assert resumed_from >= 1


def test_a_run_whose_retries_run_out_is_interrupted_then_resumes(store, monkeypatch) -> None:
    monkeypatch.setattr(ray_executor, "MAX_RETRIES", 0)
    run_id = queue.submit(shapes_config(epochs=KILLED_RUN_EPOCHS), store, start_worker=False)
    dispatcher = start_dispatcher()
    run = wait_for(lambda: running_past_epoch(store, run_id, 1), "the run is past epoch 1")
    os.kill(run["worker_pid"], signal.SIGKILL)
    dispatcher.join(timeout=TIMEOUT_S)
    run = store.get_run(run_id)
    assert run["status"] == "interrupted"
    assert "died" in run["error"] and "Resume" in run["error"]

    queue.resume(run_id, store, start_worker=False)
    dispatcher = start_dispatcher()
    dispatcher.join(timeout=TIMEOUT_S)
    run = store.get_run(run_id)
    assert run["status"] == "completed", run["error"]
    assert len(epoch_rows(store, run_id)) == KILLED_RUN_EPOCHS


def test_stop_reaches_a_run_on_the_cluster(store: Store) -> None:
    run_id = queue.submit(shapes_config(epochs=200), store, start_worker=False)
    dispatcher = start_dispatcher()
    wait_for(lambda: running_past_epoch(store, run_id, 1), "the run is past epoch 1")
    queue.stop(run_id, store)
    dispatcher.join(timeout=TIMEOUT_S)
    run = store.get_run(run_id)
    assert run["status"] == "stopped"
    assert run["epoch"] < 200


def test_a_gpu_run_on_a_cpu_cluster_fails_saying_what_it_needs(store: Store) -> None:
    run_id = queue.submit(shapes_config(device="cuda"), store, start_worker=False)
    assert worker.work(idle_exit_s=0, poll_s=0.05) == 0
    run = store.get_run(run_id)
    assert run["status"] == "failed"
    assert "No node of the Ray cluster has 1 GPU(s) and 1 CPU(s)" in run["error"]
