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

This module holds the loop's side of it: joining the group, the ranks' collectives, DDP around
the model and each rank's share of a batch. Starting recorded runs as torchrun jobs is
core.runs.launch.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from core.config import TrainConfig
from core.data.loader import DeviceSplit

GROUP_TIMEOUT = timedelta(minutes=60)  # how long a rank waits for the others (rank 0 validating)


FIRST_FLUSH_STEPS = 10  # steps before the ranks first agree on a step-metrics flush


MAX_FLUSH_STEPS = 1000


LR_SCALING = "none: batch_size is the global batch, the same on any number of GPUs"


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
    The training loop calls these at its few points of agreement; ProcessGroup makes them real."""

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
