"""One run on several processes (training.ranks, runs.launch): torchrun + DDP, on the CPU (gloo).

The main test starts `torchrun --standalone --nproc_per_node 2 -m core train …` and checks that
the two ranks train exactly the run one process trains on the same global batch: same weights
(within a float tolerance), same epoch metrics, one run row, one log, one set of checkpoints,
and a resume (through the background worker, which starts torchrun itself) that carries on as
an uninterrupted run would.

The model is a tiny JSON spec without BatchNorm and dropout: BatchNorm computes per-rank
statistics on the CPU (torch's SyncBatchNorm works on CUDA only: "SyncBatchNorm layers only work
with GPU modules" in torch 2.15) and dropout masks come from per-rank random streams, so each
would legitimately differ from one process on the whole batch. Augmentation stays on: each rank
draws the whole batch's random numbers and keeps its share's, so flips and shifts match one
process image for image. What remains must then match up to the order of float sums.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from streamlit.testing.v1 import AppTest

from core.config import TrainConfig
from core.data.loader import DeviceSplit
from core.runs import launch, queue, worker
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.training import ranks
from core.training.checkpoint import checkpoint_state
from core.workspace import REPO_ROOT, runs_dir
from models import create_model

# fp32 on the CPU; the ranks average two 16-image mean gradients where one process takes one
# 32-image mean, so sums run in another order: ~1e-9 apart after 14 Adam steps when measured.
# 1e-5 leaves room for other CPUs' kernels, while training moves the weights by more than 1e-2,
# so a wrong shard, a missed all-reduce or a rank loading another checkpoint shows far above it.
WEIGHT_TOLERANCE = 1e-5
TINY_SPEC = {"layers": [{"type": "conv", "filters": 8, "kernel": 3, "stride": 2},
                        {"type": "activation", "fn": "relu"},
                        {"type": "globalpool", "kind": "avg"},
                        {"type": "dense", "units": "classes"}]}
# deterministic apart from float order; a constant learning rate, so a run stopped after 2
# epochs and resumed to 3 follows the same schedule as one run of 3
SETTINGS = {"batch_size": 32, "lr": 0.01, "schedule": "constant", "device": "cpu",
            "precision": "fp32", "flip": True, "pad_crop": 2}
CLI_SETTINGS = ["--batch-size", "32", "--lr", "0.01", "--schedule", "constant", "--device",
                "cpu", "--precision", "fp32", "--pad-crop", "2"]
APP = str(Path(__file__).resolve().parents[2] / "app.py")


def torchrun_train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "core", "train", *args, "--json"],
        capture_output=True, text=True, timeout=600, cwd=REPO_ROOT,
        env=os.environ | {"OMP_NUM_THREADS": "1"})


def model_weights(folder: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(str(folder / "last.safetensors")).items()
            if k.startswith("model.")}


def epoch_metrics(store: Store, run_id: str, name: str) -> list[tuple[float, float]]:
    return [(row["epoch"], row["value"]) for row in store.metrics(run_id, names=[f"epoch/{name}"])]


def log_starts(folder: Path) -> int:
    return sum(" start: " in line for line in (folder / "log.txt").read_text().splitlines())


@pytest.mark.slow
def test_torchrun_trains_one_run_as_one_process_would_and_resumes(shapes_dataset,
                                                                   tmp_path: Path) -> None:
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps(TINY_SPEC))
    store = Store()

    done = torchrun_train("--data", "shapes", "--model", str(spec), "--epochs", "2",
                          *CLI_SETTINGS)
    assert done.returncode == 0, done.stderr[-4000:]
    printed = json.loads(done.stdout)  # one JSON object: rank 0 alone prints
    [run] = store.list_runs()  # rank 0 alone made a run row
    run_id, folder = run["run_id"], runs_dir() / run["run_id"]
    assert printed["run_id"] == run_id and run["status"] == "completed"
    assert run["config"]["gpus"] == 2
    assert run["summary"]["distributed"] == {
        "world_size": 2, "backend": "gloo", "global_batch": 32, "per_rank_batch": 16,
        "lr_scaling": ranks.LR_SCALING, "batchnorm": "per-rank statistics"}
    assert [path.name for path in runs_dir().iterdir()] == [run_id]
    assert sorted(path.name for path in folder.glob("*.safetensors")) == [
        "best.safetensors", "last.safetensors"]
    assert not list(folder.glob(".*.tmp"))  # no rank left a half-written file behind
    assert log_starts(folder) == 1  # one log writer
    assert [epoch for epoch, _ in epoch_metrics(store, run_id, "val_acc")] == [1, 2]

    # the run is cut off after epoch 2 of 3; the worker resumes it through torchrun
    store.update_run(run_id, status="interrupted", config=run["config"] | {"epochs": 3})
    queue.resume(run_id, store, start_worker=False)
    assert worker.work(idle_exit_s=0, max_runs=1) == 1
    run = store.get_run(run_id)
    assert (run["status"], run["epoch"]) == ("completed", 3), (folder / "torchrun.log").read_text()
    assert log_starts(folder) == 2
    assert [epoch for epoch, _ in epoch_metrics(store, run_id, "val_acc")] == [1, 2, 3]

    alone = new_run(TrainConfig(data="shapes", model=str(spec), epochs=3, **SETTINGS), store)
    assert execute_run(alone, store)["status"] == "completed"
    ranks_weights, one_weights = model_weights(folder), model_weights(runs_dir() / alone)
    torch.manual_seed(0)  # the run's own initialisation (seed 0), to see that training moved it
    start = create_model(TINY_SPEC, in_chans=3, num_classes=3, image_size=32).state_dict()
    for name, weights in one_weights.items():
        torch.testing.assert_close(ranks_weights[name], weights, rtol=0, atol=WEIGHT_TOLERANCE)
    assert max((one_weights[f"model.{k}"] - v).abs().max().item() for k, v in start.items()) \
        > 1e-2
    # metrics summed over both ranks: the same images counted, the same losses
    progress = [checkpoint_state(f, "last")["progress"] for f in (folder, runs_dir() / alone)]
    assert progress[0]["epoch_images"] == progress[1]["epoch_images"] == [224, 224, 224]
    assert progress[0]["step"] == progress[1]["step"] == 21
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):
        ranks_values = [value for _, value in epoch_metrics(store, run_id, name)]
        one_values = [value for _, value in epoch_metrics(store, alone, name)]
        assert ranks_values == pytest.approx(one_values, abs=1e-5), name
    assert run["test_acc"] == store.get_run(alone)["test_acc"]


def test_each_rank_takes_a_disjoint_share_of_every_global_batch() -> None:
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).numpy()
    split = DeviceSplit(images, list(range(10)), torch.device("cpu"))

    def batches(shard: tuple[int, int]) -> list[list[int]]:
        generator = torch.Generator().manual_seed(7)  # seeded alike on every rank
        return [labels.tolist() for _, labels in split.batches(
            4, shuffle=True, generator=generator, drop_last=True, shard=shard)]

    whole = batches((0, 1))
    shares = [batches((rank, 2)) for rank in range(2)]
    assert [len(batch) for batch in whole] == [4, 4]
    for step, batch in enumerate(whole):
        assert shares[0][step] + shares[1][step] == batch  # disjoint, and together the batch
        assert len(shares[0][step]) == len(shares[1][step]) == 2
    sharded = ranks.ShardedSplit(split, 1, 2)
    assert len(sharded) == 10  # steps and epochs count global batches
    generator = torch.Generator().manual_seed(7)
    assert [labels.tolist() for _, labels in sharded.batches(
        4, shuffle=True, generator=generator, drop_last=True)] == shares[1]


def test_the_global_batch_must_split_evenly_over_the_gpus() -> None:
    TrainConfig(data="d", gpus=4, batch_size=64).validate()
    with pytest.raises(ValueError, match="global batch: give a multiple of 4"):
        TrainConfig(data="d", gpus=4, batch_size=30).validate()
    with pytest.raises(ValueError, match="global batch"):
        TrainConfig(data="d", gpus=2, batch_size=0).validate()  # auto: found per GPU
    with pytest.raises(ValueError, match="at least 1"):
        TrainConfig(data="d", gpus=0).validate()


def test_a_run_asking_for_more_gpus_than_visible_fails_saying_so(studio_home,
                                                                 monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    store = Store()
    run_id = new_run(TrainConfig(data="shapes", device="cuda", gpus=2), store, status="running")
    result = launch.execute(run_id, store)  # would start torchrun; refuses first
    run = store.get_run(run_id)
    assert result["status"] == run["status"] == "failed"
    assert "asks for 2 GPUs but this machine sees 1" in run["error"]


def open_train_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, at.exception
    return at


def test_the_train_page_offers_gpus_only_when_several_are_visible(shapes_dataset,
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(queue, "ensure_worker", lambda: False)  # no worker process in this test
    at = open_train_page()
    assert "train_gpus" not in [widget.key for widget in at.number_input]

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    at = open_train_page()
    at.number_input(key="train_gpus").set_value(2)
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    [run] = Store().list_runs()
    assert run["config"]["gpus"] == 2


def test_a_launched_job_dies_with_the_process_that_started_it() -> None:
    """A killed worker must not leave its torchrun job training beside the run's retry."""
    starter = ("import subprocess, time\nfrom core.runs.launch import die_with_parent\n"
               "job = subprocess.Popen(['sleep', '60'], preexec_fn=die_with_parent)\n"
               "print(job.pid, flush=True)\ntime.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True,
                              cwd=Path(__file__).resolve().parents[2])
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child_running(child):
        time.sleep(0.05)
    assert not child_running(child)


def child_running(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                     if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]  # a zombie has ended; only its parent's wait is missing
