"""One run on several GPUs (or CPU processes): torchrun starts the processes, DDP trains.

`torchrun --nproc_per_node N -m core train …` starts N copies of the command line; each joins
the process group torchrun describes in its environment (NCCL where CUDA is visible, else
gloo) and becomes one rank of a single run:

- `batch_size` is the GLOBAL batch. Every rank draws the same epoch order (the loop's generator
  is seeded the same everywhere) and takes its contiguous `batch_size / N` share of each
  batch; DistributedDataParallel averages the gradients, so a step is the step one device takes
  on the whole batch. The schedule, steps per epoch and learning rate stay those of the
  one-device run: the learning rate is not scaled, because the batch it belongs to does not
  change with N (a run resumes on any number of GPUs).
- BatchNorm: SyncBatchNorm on CUDA (statistics over the global batch, as on one GPU); per-rank
  statistics on the CPU, where torch has no SyncBatchNorm.
- Rank 0 alone touches the store and the run folder: it creates (or resumes) the run, streams
  metrics, saves checkpoints and logs. It broadcasts the run id, config and resume flag to the
  other ranks, which train without recording anything.
- Step and epoch metrics are summed over the ranks. Validation and test run on rank 0 alone, on
  the whole split exactly as one process would, and the result is broadcast, so every rank takes
  the same early-stopping and best-checkpoint decision.
- Resume: every rank loads the run's `last` checkpoint (the workspace must be shared by all
  nodes, e.g. NFS, as the Ray executor requires too).

`execute()` is how the rest of the engine starts a recorded run: in this process, as rank 0 of
the torchrun job this process belongs to, or through a new `torchrun --standalone` job when the
run's config asks for several GPUs (the background worker and `train --gpus N` do that).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:  # imported lazily below: core.setup imports this module
    from core.config import TrainConfig
    from core.data.loader import DeviceSplit
    from core.hooks import Hooks
    from core.setup import Setup
    from core.store import Store

log = logging.getLogger(__name__)
GROUP_TIMEOUT = timedelta(minutes=60)  # how long a rank waits for the others (rank 0 validating)
FIRST_FLUSH_STEPS = 10  # steps before the ranks first agree on a step-metrics flush
MAX_FLUSH_STEPS = 1000
STOP_GRACE_SECONDS = 120.0  # after a stop request, how long a torchrun job gets to end itself
PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)
LR_SCALING = "none: batch_size is the global batch, the same on any number of GPUs"
REPO_ROOT = Path(__file__).resolve().parent.parent


# The process group.

def launched_by_torchrun() -> bool:
    """True in a process torchrun started as one of several ranks."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def joined() -> bool:
    return dist.is_available() and dist.is_initialized()


def is_main() -> bool:
    """True on rank 0, and in any process that is not part of a group."""
    return not joined() or dist.get_rank() == 0


def world_size() -> int:
    return dist.get_world_size() if joined() else 1


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (the Train page offers "GPUs: N" when several)."""
    return torch.cuda.device_count()


def init_process_group() -> None:
    """Join the group torchrun set up (env://): NCCL with one GPU per rank where CUDA is
    visible, gloo on the CPU."""
    if joined():
        return
    backend = "gloo"
    if torch.cuda.is_available():
        local_rank, count = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(
                f"torchrun started more processes on this node than it has GPUs ({count}); "
                f"give --nproc_per_node {count} or fewer.")
        torch.cuda.set_device(local_rank)  # "cuda" now means this rank's GPU everywhere
        backend = "nccl"
    dist.init_process_group(backend, timeout=GROUP_TIMEOUT)


def leave_process_group() -> None:
    if joined():
        dist.destroy_process_group()


class SingleProcess:
    """The training loop's view of its ranks when there is one: every collective is a no-op.
    `core.train` calls these at its few points of agreement; ProcessGroup makes them real."""

    rank, world_size, is_main = 0, 1, True

    def flush_due(self, step: int, window_start: float, seconds: float) -> bool:
        """Whether to read and send the step metrics now (about every `seconds`)."""
        return time.perf_counter() - window_start >= seconds

    def window_totals(self, loss_sum: torch.Tensor, images: int,
                      elapsed: float) -> tuple[float, int]:
        """(summed loss, images) of the metrics window over all ranks; the one host sync."""
        return loss_sum.item(), images

    def epoch_totals(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int,
                     seconds: float) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        """An epoch's loss sum, hits and images summed over the ranks; its slowest rank's time."""
        return loss_sum, correct, seen, seconds

    def agree(self, flag: bool) -> bool:
        """True on every rank when it is true on any (rank 0's hooks hear stop requests)."""
        return flag

    def from_main(self, compute: Callable[[], Any]) -> Any:
        """`compute()` run on rank 0 alone, its result handed to every rank."""
        return compute()

    def summary(self) -> dict:
        """What the run's result records about its ranks."""
        return {}


SINGLE_PROCESS = SingleProcess()


class ProcessGroup(SingleProcess):
    """This process as one rank of the torchrun job: the loop's collectives over the group.

    Step metrics cannot be flushed on a timer here (each rank's clock would pick another step,
    and a collective that not every rank enters hangs), so the ranks flush every
    `flush_every` steps, re-agreed at each flush from the window's mean time."""

    def __init__(self, device: torch.device, global_batch: int, sync_batchnorm: bool) -> None:
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0
        self.device = device if device.type == "cuda" else torch.device("cpu")
        on_nccl = dist.get_backend() == "nccl"
        # a CPU run on a GPU machine: NCCL cannot carry CPU tensors, a gloo group over the
        # same ranks does (every rank makes it: new_group is itself a collective)
        self.group = dist.new_group(backend="gloo") if on_nccl and device.type != "cuda" \
            else None
        self.global_batch, self.sync_batchnorm = global_batch, sync_batchnorm
        self.flush_every, self.steps_since_flush, self.flush_seconds = FIRST_FLUSH_STEPS, 0, 1.0

    def flush_due(self, step: int, window_start: float, seconds: float) -> bool:
        self.flush_seconds = seconds
        self.steps_since_flush += 1
        return self.steps_since_flush >= self.flush_every

    def window_totals(self, loss_sum: torch.Tensor, images: int,
                      elapsed: float) -> tuple[float, int]:
        totals = torch.tensor([0.0, images, elapsed], dtype=torch.float64, device=self.device)
        totals[0] = loss_sum.detach()
        dist.all_reduce(totals, group=self.group)
        loss, images_all, elapsed_sum = totals.tolist()
        mean_elapsed = elapsed_sum / self.world_size
        if self.steps_since_flush and mean_elapsed > 0:
            rate = self.steps_since_flush / mean_elapsed
            self.flush_every = min(MAX_FLUSH_STEPS, max(1, round(rate * self.flush_seconds)))
        self.steps_since_flush = 0
        return loss, int(images_all)

    def epoch_totals(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int,
                     seconds: float) -> tuple[torch.Tensor, torch.Tensor, int, float]:
        sums = torch.stack([loss_sum.detach().double().to(self.device),
                            correct.double().to(self.device),
                            torch.tensor(float(seen), dtype=torch.float64, device=self.device)])
        dist.all_reduce(sums, group=self.group)
        slowest = torch.tensor([seconds], dtype=torch.float64, device=self.device)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX, group=self.group)
        return sums[0], sums[1].long(), int(sums[2].item()), slowest.item()

    def agree(self, flag: bool) -> bool:
        vote = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self.group)
        return bool(vote.item())

    def from_main(self, compute: Callable[[], Any]) -> Any:
        payload = [compute() if self.is_main else None]
        dist.broadcast_object_list(payload, src=0, group=self.group)
        return payload[0]

    def summary(self) -> dict:
        return {"distributed": {
            "world_size": self.world_size, "backend": dist.get_backend(self.group),
            "global_batch": self.global_batch,
            "per_rank_batch": self.global_batch // self.world_size,
            "lr_scaling": LR_SCALING,
            "batchnorm": "SyncBatchNorm" if self.sync_batchnorm else "per-rank statistics",
        }}


class ShardedSplit:
    """A DeviceSplit seen by one rank: `batches` yields the rank's share of each global batch;
    its length stays the whole split's, so steps and epochs count global batches."""

    def __init__(self, split: DeviceSplit, rank: int, ranks: int) -> None:
        self.split, self.rank, self.ranks = split, rank, ranks

    def __len__(self) -> int:
        return len(self.split)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.split, name)

    def batches(self, batch_size: int, **options: Any):
        return self.split.batches(batch_size, shard=(self.rank, self.ranks), **options)


def check_world(config: TrainConfig, ranks: int, train_images: int | None = None) -> None:
    """Raise ValueError when `config` cannot train data-parallel on `ranks` processes: the
    config's own checks with `gpus` set to `ranks` (a number, a multiple of it, for the global
    batch), then the training split's size."""
    dataclasses.replace(config, gpus=ranks).validate()
    if train_images is not None and train_images < ranks:
        raise ValueError(f"The training split has {train_images} images, fewer than the "
                         f"{ranks} GPUs; train on one.")


def attach(setup: Setup, config: TrainConfig) -> None:
    """Make `setup` one rank of the process group this process is in (no-op outside one): DDP
    around the model, this rank's share of every batch, collectives for the loop."""
    if not joined() or dist.get_world_size() < 2:
        return
    from core.setup import CompiledForward

    check_world(config, dist.get_world_size(), len(setup.train))
    on_cuda = setup.device.type == "cuda"
    has_batchnorm = any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
                        for module in setup.model.modules())
    ranks = ProcessGroup(setup.device, config.batch_size, sync_batchnorm=on_cuda and has_batchnorm)
    if ranks.sync_batchnorm:  # the same parameter objects: the optimizer still holds them
        setup.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(setup.model, ranks.group)
    ddp = DistributedDataParallel(
        setup.model, device_ids=[torch.cuda.current_device()] if on_cuda else None,
        process_group=ranks.group,
        find_unused_parameters=config.freeze_epochs > 0)  # a frozen backbone gets no gradients
    # compiled in the default mode: CUDA graphs (reduce-overhead) do not mix with DDP's hooks
    setup.forward = CompiledForward(ddp) if isinstance(setup.forward, CompiledForward) else ddp
    setup.train = ShardedSplit(setup.train, ranks.rank, ranks.world_size)
    setup.ranks = ranks


# `python -m core train …` under torchrun.

def train_as_rank(args: argparse.Namespace, train: Callable[[argparse.Namespace], Any]) -> Any:
    """Run the `train` command as one rank: rank 0 runs it as on one device (its `execute()`
    call hands the run to the others); the others wait for the run and train it."""
    init_process_group()
    try:
        if is_main():
            try:
                return train(args)
            finally:
                announce(None)  # no run after all (an error, or --queue): release the others
        job = [None]
        dist.broadcast_object_list(job, src=0)
        if job[0] is not None:
            follow(job[0])
        return None  # only rank 0 prints
    finally:
        leave_process_group()


_announced = False


def announce(job: dict | None) -> None:
    """Rank 0: tell the other ranks which run to train (once per process)."""
    global _announced
    if _announced or not joined():
        return
    _announced = True
    dist.broadcast_object_list([job], src=0)


def follow(job: dict) -> None:
    """A rank other than 0: train the announced run, recording nothing."""
    from core.config import TrainConfig
    from core.train import fit
    from core.workspace import runs_dir

    fit(TrainConfig.from_dict(job["config"]), runs_dir() / job["run_id"], resume=job["resume"])


# Starting a recorded run.

def execute(run_id: str, store: Store, extra_hooks: list[Hooks] | None = None, *,
            may_launch: bool = True) -> dict:
    """Train a recorded run and record its outcome, like core.runs.execute_run (which it calls
    where the run trains in this process): as rank 0 of this process's torchrun job; through a
    new torchrun job when the config asks for several GPUs (`may_launch`); else right here."""
    from core.runs import execute_run

    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"There is no run {run_id!r}; see `python -m core runs list`.")
    if joined():
        prepare_job(run_id, store)
        return execute_run(run_id, store, extra_hooks)
    if may_launch and wants_torchrun(run["config"]):
        return run_through_torchrun(run_id, store)
    return execute_run(run_id, store, extra_hooks)


def wants_torchrun(config: dict) -> bool:
    """Whether a run's config asks for several GPUs (so a torchrun job must train it)."""
    return config.get("gpus", 1) > 1


def prepare_job(run_id: str, store: Store) -> None:
    """Rank 0: record the world size on the run, check it can train on it, announce it."""
    from core.checkpoint import has_checkpoint
    from core.config import TrainConfig
    from core.runs import run_folder

    run = store.get_run(run_id)
    ranks = dist.get_world_size()
    config = run["config"] | {"gpus": ranks}
    try:
        check_world(TrainConfig.from_dict(config), ranks)
        warm_cache(TrainConfig.from_dict(config))
    except Exception as error:  # recorded, or the run would sit `running` until it went stale
        store.update_run(run_id, status="failed", error=str(error), finished_at=time.time())
        raise
    if config != run["config"]:
        store.update_run(run_id, config=config)
    announce({"run_id": run_id, "config": config,
              "resume": has_checkpoint(run_folder(run_id), "last")})


def warm_cache(config: TrainConfig) -> None:
    """Rank 0 decodes the dataset's cache before the others start: they would otherwise all
    build it at once (and, on a shared folder, one node could delete another's half-built file
    as abandoned)."""
    from core.data.cache import default_image_size, load_cache
    from core.data.dataset import load_dataset

    dataset = load_dataset(config.data)
    load_cache(dataset, config.image_size or default_image_size(dataset))


def torchrun_command(run_id: str, nproc: int) -> list[str]:
    """The command that trains recorded run `run_id` on `nproc` local GPUs (or CPU processes)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), "-m", "core", "train", "--execute", run_id]


def launch_torchrun(run_id: str, nproc: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start a queued (or claimed) run as a torchrun job on this machine; its output goes to
    `log_path` (default: `torchrun.log` in the run folder)."""
    from core.runs import run_folder
    from core.workspace import home

    log_path = log_path or run_folder(run_id) / "torchrun.log"
    with open(log_path, "a") as output:
        return subprocess.Popen(
            torchrun_command(run_id, nproc), stdout=output, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
            env=os.environ | {"CNN_STUDIO_HOME": str(home())},
            preexec_fn=die_with_parent if sys.platform == "linux" else None)


def die_with_parent() -> None:
    """Runs in the torchrun child before exec: ask Linux for a SIGTERM when the launching process
    dies, so a killed worker (or Ray task) does not leave the job training beside its retry.
    torchrun passes the SIGTERM on to its ranks."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def gpu_shortfall(config: dict) -> str | None:
    """Why this machine cannot start the run's torchrun job, or None when it can."""
    gpus, device = config.get("gpus", 1), config.get("device", "auto")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return None  # CPU processes (gloo): slow, but they run anywhere
    visible = torch.cuda.device_count()
    if visible < gpus:
        return (f"This run asks for {gpus} GPUs but this machine sees {visible}. Lower its GPU "
                "count, or start it with torchrun on the nodes that have them "
                "(see the README, \"Growing past one machine\").")
    return None


def run_through_torchrun(run_id: str, store: Store) -> dict:
    """Train a recorded run as a torchrun job on this machine, waiting for it. This process
    keeps the run's heartbeat while the ranks start (importing torch takes a while), and ends
    the job if a stop request goes unheeded for STOP_GRACE_SECONDS."""
    from core.runs import RunHeartbeat, run_folder

    run = store.get_run(run_id)
    problem = gpu_shortfall(run["config"])
    if problem:
        store.update_run(run_id, status="failed", error=problem, finished_at=time.time())
        return {"run_id": run_id, "name": run["name"], "status": "failed", "error": problem}
    store.update_run(run_id, status="running", heartbeat_at=time.time(), stop_requested=0)
    heartbeat = RunHeartbeat(store, run_id)
    heartbeat.start()
    try:
        job = launch_torchrun(run_id, run["config"]["gpus"])
        code, stop_asked = wait_for_job(job, heartbeat, store, run_id)
    except OSError as error:  # torchrun could not start at all
        code, stop_asked = f"not started: {error}", False
    finally:
        heartbeat.done.set()
    run = store.get_run(run_id)
    if run["status"] == "running":  # the ranks died before rank 0 could record an outcome
        ended = "stopped" if stop_asked else "failed"
        error = None if ended == "stopped" else (
            f"The torchrun job ended (exit code {code}) before the run finished; its output is "
            f"in {run_folder(run_id) / 'torchrun.log'}. Resume the run to continue from its "
            "last checkpoint.")
        store.update_run(run_id, status=ended, error=error, finished_at=time.time())
        run = store.get_run(run_id)
    return {"run_id": run_id, "name": run["name"], **(run["summary"] or {}),
            "status": run["status"], "error": run["error"]}


def wait_for_job(job: subprocess.Popen, heartbeat, store: Store, run_id: str) -> tuple[int, bool]:
    """Wait for the torchrun job; return its exit code and whether a stop was requested. A stop
    asked for while the ranks start is asked again (rank 0 clears the flag as it begins), and a
    job still running STOP_GRACE_SECONDS after it is terminated."""
    asked_at: float | None = None
    while True:
        try:
            return job.wait(timeout=1.0), asked_at is not None
        except subprocess.TimeoutExpired:
            pass
        if asked_at is None:
            if heartbeat.stop_requested:
                asked_at = time.monotonic()
            continue
        if not heartbeat.stop_requested:
            store.request_stop(run_id)
        if time.monotonic() - asked_at > STOP_GRACE_SECONDS:
            log.warning("torchrun job %s ignored a stop request; terminating it", job.pid)
            job.terminate()  # torchrun passes SIGTERM on to its ranks
            asked_at = time.monotonic()  # and again after another grace period
