"""The Ray executor (`CNN_STUDIO_EXECUTOR=ray`): queued runs spread over a Ray cluster.

The detached worker (`python -m core worker`, started by `core.runs.queue.ensure_worker`)
becomes a Ray driver, the dispatcher. It attaches to the cluster at `RAY_ADDRESS` (unset: the
local Ray instance if one was started with `ray start`, else a new one for as long as it lives),
claims queued runs from the store while the cluster has room for them, and submits each as a
Ray task asking for what the run needs: its GPUs (a `cuda` run, or an `auto` one on a cluster
with GPUs) or a CPU. On whichever node Ray picks, the task trains the run as the local worker does
(`core.runs.launch.execute`: in the task's process, or through torchrun for a run with several
GPUs, all on that node). So a run behaves as under the local worker: it beats, reads stop
requests, writes metrics through the store and checkpoints into its run folder. Hence every
node must see the same store (`CNN_STUDIO_DB`: PostgreSQL once there is more than one
machine), the same workspace at the same path (`CNN_STUDIO_HOME` on a shared filesystem such
as NFS), the same CNN Studio checkout at the same path, and a clock in step (NTP: heartbeats
are compared across machines).

A Ray worker process or node that dies takes its run down with it; Ray retries the task
(`MAX_RETRIES`) where there is room, and training resumes from the run's `last` checkpoint.
Until the retry starts the run stops beating, so the dashboard marks it `interrupted`; a run
whose retries ran out stays `interrupted`, resumable from the Runs page.

Ray is imported in this module only, inside `connect()` and the task, so a machine without
Ray (the default, local executor) never needs it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from types import ModuleType

from core.runs.launch import execute
from core.runs.queue import reconcile
from core.runs.record import run_folder
from core.store import Store
from core.training.hooks import LogFile
from core.training.run_files import LOG
from core.workspace import home

log = logging.getLogger(__name__)
MAX_RETRIES = 3  # times Ray re-runs a run whose worker process or node died
CPUS_PER_RUN_VARIABLE = "CNN_STUDIO_RAY_CPUS_PER_RUN"  # CPUs (and torch threads) for each run
ANY_NUMBER = 1_000_000  # the store's own cap on running runs; the cluster's capacity rules here
NOT_TO_TRAIN = ("completed", "stopped", "failed")


@dataclass(frozen=True)
class Demand:
    """The cluster resources one run holds while it trains."""

    cpus: float
    gpus: float = 0.0

    def __add__(self, other: Demand) -> Demand:
        return Demand(self.cpus + other.cpus, self.gpus + other.gpus)

    def fits_in(self, resources: dict[str, float]) -> bool:
        return (self.cpus <= resources.get("CPU", 0.0) + 1e-9
                and self.gpus <= resources.get("GPU", 0.0) + 1e-9)

    def describe(self) -> str:
        return f"{self.gpus:g} GPU(s) and {self.cpus:g} CPU(s)" if self.gpus \
            else f"{self.cpus:g} CPU(s)"


def cpus_per_run() -> float:
    value = os.environ.get(CPUS_PER_RUN_VARIABLE, "1")
    try:
        cpus = float(value)
    except ValueError:
        cpus = -1.0
    if cpus <= 0:
        raise ValueError(f"{CPUS_PER_RUN_VARIABLE}={value!r} is not a number of CPUs: set it to "
                         "a positive number such as 1 or 4, or unset it for 1.")
    return cpus


def run_demand(config: dict, cluster_has_gpus: bool) -> Demand:
    """What a run asks Ray for: a `cuda` run (or an `auto` one when the cluster has GPUs) gets
    its GPUs (the config's `gpus`, one per torchrun rank) on one node and a CPU per GPU to feed
    them; a CPU run gets `cpus_per_run()` CPUs per rank (Ray sets OMP_NUM_THREADS to the task's
    CPUs, so torch uses that many threads)."""
    ranks = max(1, int(config.get("gpus") or 1))
    device = config.get("device", "auto")
    if device == "cuda" or (device == "auto" and cluster_has_gpus):
        return Demand(cpus=float(ranks), gpus=float(ranks))
    return Demand(cpus=cpus_per_run() * ranks)


# --------------------------------------------------------------------------- on the Ray node

def train_on_node(run_id: str, workspace: str, db_url: str, dispatcher_pid: int) -> dict:
    """The Ray task: train one claimed run on this node against the shared store and
    workspace, in this worker process (or through torchrun on the GPUs Ray gave it, for a run
    with several). On a retry (the last attempt's process died), it notes that in the run's
    log, and training resumes from the last checkpoint."""
    os.environ["CNN_STUDIO_HOME"] = workspace  # for run_folder(), the dataset cache, …
    os.environ["CNN_STUDIO_DB"] = db_url
    store = Store(db_url)
    run = store.get_run(run_id)
    if run is None:
        return {"run_id": run_id, "status": "deleted"}
    if run["status"] in NOT_TO_TRAIN:
        return {"run_id": run_id, "status": run["status"]}
    if run["stop_requested"]:  # stopped while waiting for its (re)start
        store.update_run(run_id, status="stopped", finished_at=time.time())
        return {"run_id": run_id, "status": "stopped"}
    if run["worker_pid"] not in (None, dispatcher_pid):
        LogFile(run_folder(run_id) / LOG).write(
            f"worker process {run['worker_pid']} died; resuming from the last checkpoint "
            f"on {socket.gethostname()} (pid {os.getpid()})")
    # started: from here the dispatcher no longer beats for it (this process and the run do).
    # No host is recorded: Ray retries a dead process itself, so a reader must not mark the run
    # interrupted on seeing its pid gone; a stale heartbeat still does once Ray gives up.
    store.update_run(run_id, status="running", worker_pid=os.getpid(), worker_host=None,
                     heartbeat_at=time.time())
    return execute(run_id, store, record_host=False)


# --------------------------------------------------------------------------- the dispatcher

def import_ray() -> ModuleType:
    try:
        import ray
    except ImportError:
        raise RuntimeError("CNN_STUDIO_EXECUTOR=ray needs Ray on this machine and on every "
                           "node of the cluster: pip install ray") from None
    return ray


def connect() -> ModuleType:
    """Attach to the cluster at RAY_ADDRESS (or the local one, started if need be)."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
    return ray


@dataclass
class Submitted:
    run_id: str
    demand: Demand


class Dispatcher:
    """Claims queued runs while the cluster has room, submits each as a Ray task, beats for
    runs whose task has not started yet, and records how each task ended."""

    def __init__(self, store: Store, ray: ModuleType) -> None:
        self.store, self.ray = store, ray
        self.pid = os.getpid()
        self.tasks: dict = {}  # ObjectRef → Submitted
        self.remote = ray.remote(max_retries=MAX_RETRIES)(train_on_node)
        self.workspace = str(home())
        nodes = self.alive_nodes()
        if self.store.writer.dialect.name == "sqlite" and len(nodes) > 1:
            log.warning("the store is a SQLite file but the Ray cluster has %d nodes: set "
                        "CNN_STUDIO_DB to a PostgreSQL URL that every node reaches", len(nodes))

    def alive_nodes(self) -> list[dict]:
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def in_use(self) -> Demand:
        used = Demand(cpus=0.0)
        for submitted in self.tasks.values():
            used += submitted.demand
        return used

    def submitting_run_ids(self) -> set[str]:
        return {submitted.run_id for submitted in self.tasks.values()}

    def oldest_queued(self) -> dict | None:
        queued = self.store.list_runs(status=["queued"])  # newest first
        return queued[-1] if queued else None

    def claim_what_fits(self, limit: int | None) -> int:
        """Submit queued runs, oldest first, while the cluster has room; returns how many."""
        claimed = 0
        while limit is None or claimed < limit:
            run = self.oldest_queued()
            if run is None:
                break
            total = self.ray.cluster_resources()
            demand = run_demand(run["config"], total.get("GPU", 0.0) > 0)
            if not any(demand.fits_in(node["Resources"]) for node in self.alive_nodes()):
                self.refuse(run, demand)
                continue
            if not (self.in_use() + demand).fits_in(total):
                break
            run = self.store.claim_next_run(self.pid, max_running=ANY_NUMBER)
            if run is None:
                break
            self.submit(run)
            claimed += 1
        return claimed

    def refuse(self, run: dict, demand: Demand) -> None:
        message = (f"No node of the Ray cluster has {demand.describe()}, which this run needs. "
                   "Add such a node (or pick another device), then resume the run.")
        log.warning("run %s: %s", run["run_id"], message)
        self.store.update_run(run["run_id"], status="failed", error=message,
                              finished_at=time.time())

    def submit(self, run: dict) -> None:
        if run["run_id"] in self.submitting_run_ids():
            return  # resumed while its earlier task waits for a retry: that task will train it
        demand = run_demand(run["config"], self.ray.cluster_resources().get("GPU", 0.0) > 0)
        ref = self.remote.options(num_cpus=demand.cpus, num_gpus=demand.gpus).remote(
            run["run_id"], self.workspace, self.store.url, self.pid)
        self.tasks[ref] = Submitted(run["run_id"], demand)
        log.info("run %s (%s) submitted to Ray asking for %s", run["run_id"], run["name"],
                 demand.describe())

    def beat_for_waiting_runs(self) -> None:
        """A claimed run whose task waits for a worker has no heartbeat of its own yet: beat
        for it, so it is not taken for dead, and cancel it if a stop was asked for."""
        for ref, submitted in list(self.tasks.items()):
            run = self.store.get_run(submitted.run_id)
            if run is None or run["status"] != "running" or run["worker_pid"] != self.pid:
                continue
            if self.store.heartbeat(submitted.run_id):
                self.store.update_run(submitted.run_id, status="stopped",
                                      finished_at=time.time())
                self.ray.cancel(ref)

    def settle_finished(self, timeout_s: float) -> int:
        """Wait up to timeout_s for a task to end and record it; returns how many ended."""
        if not self.tasks:
            time.sleep(timeout_s)
            return 0
        ready, _ = self.ray.wait(list(self.tasks), num_returns=1, timeout=timeout_s,
                                 fetch_local=False)
        for ref in ready:
            self.settle(ref, self.tasks.pop(ref))
        return len(ready)

    def settle(self, ref, submitted: Submitted) -> None:
        try:
            result = self.ray.get(ref)
            log.info("run %s ended %s", submitted.run_id, result.get("status"))
            return
        except self.ray.exceptions.TaskCancelledError:
            status, error = "stopped", None
        except self.ray.exceptions.RayTaskError as failure:  # raised by our code in the task
            status, error = "failed", f"The run failed on the Ray cluster: {failure.cause}"
        except self.ray.exceptions.RayError as failure:  # the process or node died, retries spent
            status = "interrupted"
            error = (f"The Ray worker training this run died {MAX_RETRIES + 1} times "
                     f"({type(failure).__name__}). Resume it to continue from the last "
                     "checkpoint.")
        run = self.store.get_run(submitted.run_id)
        if run is not None and run["status"] == "running":
            log.warning("run %s: %s", submitted.run_id, error or status)
            self.store.update_run(submitted.run_id, status=status, error=error,
                                  finished_at=time.time())


def dispatch(store: Store, *, idle_exit_s: float = 120.0, poll_s: float = 1.0,
             max_runs: int | None = None) -> int:
    """The dispatcher loop: keep the cluster busy with queued runs until none is queued or
    running for idle_exit_s (or max_runs were submitted and have ended). Returns how many runs
    it submitted."""
    dispatcher = Dispatcher(store, connect())
    submitted, idle_since = 0, time.monotonic()
    while True:
        try:
            reconcile(store)
            left = None if max_runs is None else max_runs - submitted
            submitted += dispatcher.claim_what_fits(left)
            dispatcher.beat_for_waiting_runs()
            dispatcher.settle_finished(poll_s)
            nothing_queued = dispatcher.oldest_queued() is None
        except ConnectionError as error:  # the store is out of reach a while; the runs go on
            log.warning("%s", error)
            time.sleep(poll_s)
            continue
        if dispatcher.tasks:
            idle_since = time.monotonic()
            continue
        out_of_runs = nothing_queued or (max_runs is not None and submitted >= max_runs)
        if out_of_runs and time.monotonic() - idle_since >= idle_exit_s:
            return submitted
