"""Crashes and full disks: a training process SIGKILLed at random moments, checkpoint writes
that die halfway, and a disk that fills during an import, a cache build or a checkpoint.

After every kill: the store passes PRAGMA integrity_check, the latest checkpoint loads into a
fresh model, reconciling turns the run `interrupted` (never `running` forever), and it resumes;
at the end it completes with each epoch's metrics recorded exactly once. After every failed
write: a sentence that says the disk is full, the previous checkpoint intact, no temp files.

The kill loop runs KILLS (default 8) kills of a CRASH_EPOCHS-epoch run (default 2 x KILLS,
at least 16), seeded (CRASH_SEED); about a minute on 2 cores.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import core.data.build
import core.data.cache
import core.data.dataset
import core.durable
import core.runs.queue
import core.training.checkpoint
import core.training.loop
from core.cli.runs import runs_list
from core.config import TrainConfig
from core.data.catalog import add_demo
from core.data.dataset import DatasetError
from core.data.ingest import import_entries
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.training.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from core.training.optim import make_optimizer
from core.workspace import runs_dir
from models import create_model

REPO = Path(__file__).resolve().parents[2]
KILLS = int(os.environ.get("KILLS", "8"))
SEED = int(os.environ.get("CRASH_SEED", "7"))
EPOCHS = int(os.environ.get("CRASH_EPOCHS", max(16, 2 * KILLS)))  # ~1 epoch per attempt
START_TIMEOUT = 120.0  # seconds for a process to import torch and claim the run


@pytest.fixture
def shapes(studio_home: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    add_demo("shapes", "shapes")
    monkeypatch.setattr(core.runs.queue, "STALE_SECONDS", 0.0)  # the killed process is known dead
    return Store()


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".tmp")
                  or ".tmp." in p.name or p.name.startswith(".importing-"))


def integrity(studio_home: Path) -> str:
    with sqlite3.connect(studio_home / "studio.db", timeout=30) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def fresh_model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = create_model("tiny-cnn", in_chans=3, num_classes=3, image_size=32)
    return model, make_optimizer(TrainConfig(data="shapes"), model)


def check_checkpoints_load(folder: Path) -> int:
    """Load `last` (with its optimizer) and `best` into fresh objects; returns last's epoch."""
    epoch = 0
    if has_checkpoint(folder, "last"):
        model, optimizer = fresh_model_and_optimizer()
        meta = load_checkpoint(folder, "last", model, optimizer)
        epoch = meta["progress"]["epoch"]
        assert 1 <= epoch <= EPOCHS
        assert all(torch.isfinite(p).all() for p in model.parameters())
    if has_checkpoint(folder, "best"):
        model, _ = fresh_model_and_optimizer()
        assert 1 <= load_checkpoint(folder, "best", model)["epoch"] <= EPOCHS
    return epoch


def train_command(run_name: str, resume: bool) -> list[str]:
    if resume:
        return [sys.executable, "-m", "core", "train", "--resume", run_name, "--json"]
    return [sys.executable, "-m", "core", "train", "--data", "shapes", "--model", "tiny-cnn",
            "--epochs", str(EPOCHS), "--device", "cpu", "--name", run_name, "--json"]


def start(command: list[str], studio_home: Path, log: Path) -> subprocess.Popen:
    env = os.environ | {"CNN_STUDIO_HOME": str(studio_home), "CUDA_VISIBLE_DEVICES": ""}
    env.pop("CNN_STUDIO_DB", None)
    with open(log, "ab") as stderr:
        return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=stderr, stdin=subprocess.DEVNULL)


def wait_until_training(store: Store, name: str, process: subprocess.Popen, log: Path) -> str:
    """Wait until `process` has claimed run `name` (status running, its pid); the run id."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        run = store.get_run(name)
        if run and run["status"] == "running" and run["worker_pid"] == process.pid:
            return run["run_id"]
        if process.poll() is not None:
            pytest.fail(f"train exited with {process.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    pytest.fail("the training process never claimed its run")


def epochs_logged(log: Path) -> int:
    return len(re.findall(r"^\S+ epoch \d+:", log.read_text(), re.M)) if log.exists() else 0


def wait_for_a_random_moment(rng: random.Random, log: Path, process: subprocess.Popen) -> None:
    """A moment tied to the run's own progress, so the kills land alike on fast and slow
    machines: during set-up and the first steps, or just after an epoch ends (the next
    epoch's first steps, or its checkpoint writes when epochs are short)."""
    if rng.random() < 0.3:
        delay = rng.uniform(0.0, 0.5)
    else:
        seen = epochs_logged(log)
        while epochs_logged(log) == seen and process.poll() is None:
            time.sleep(0.005)
        delay = rng.uniform(0.0, 0.2)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.005)


def test_training_killed_at_random_moments_resumes_to_completion(shapes, studio_home, tmp_path):
    rng = random.Random(SEED)
    log = tmp_path / "train.log"
    kills, epochs_at_kill, run_id, process = 0, [], None, None
    for attempt in range(KILLS):
        process = start(train_command("crashy", resume=attempt > 0), studio_home, log)
        run_id = wait_until_training(shapes, "crashy", process, log)
        wait_for_a_random_moment(rng, runs_dir() / run_id / "log.txt", process)
        if process.poll() is not None:  # it finished before its moment came
            break
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        assert integrity(studio_home) == "ok"
        checkpointed = check_checkpoints_load(runs_dir() / run_id)
        status = shapes.get_run(run_id)["status"]
        if status == "completed":  # killed on its way out, after recording the end
            process = None
            break
        kills += 1
        epochs_at_kill.append(checkpointed)
        assert status == "running"  # what SIGKILL leaves behind
        listed = runs_list(Namespace(json=True))[0]["runs"]  # `runs list` reconciles
        assert [r["status"] for r in listed if r["run_id"] == run_id] == ["interrupted"]
        assert "Resume" in shapes.get_run(run_id)["error"]
        process = None

    if shapes.get_run(run_id)["status"] != "completed":
        final = process or start(train_command("crashy", resume=True), studio_home, log)
        out, _ = final.communicate(timeout=600)
        result = json.loads(out)
        assert result["status"] == "completed", log.read_text()[-2000:]
        assert result["epochs"] == EPOCHS
    run = shapes.get_run(run_id)
    assert run["status"] == "completed" and run["epoch"] == EPOCHS
    assert integrity(studio_home) == "ok"
    assert check_checkpoints_load(runs_dir() / run_id) == EPOCHS
    rows = shapes.metrics(run_id)
    val_acc = shapes.metrics(run_id, names=["epoch/val_acc"])
    assert [row["epoch"] for row in val_acc] == list(range(1, EPOCHS + 1))
    assert temp_files(runs_dir() / run_id) == []
    print(f"\ncrash recovery: {kills} SIGKILLs survived (last epoch checkpointed at each kill: "
          f"{epochs_at_kill}); integrity ok, checkpoints load, run completed, "
          f"{len(rows)} metric rows, one epoch row each")
    assert kills >= 1


def test_ctrl_c_on_train_leaves_the_run_interrupted_and_listed_so(studio_home, tmp_path):
    """SIGINT (Ctrl-C) on `python -m core train`: the run says interrupted at once, in the store
    and in `runs list`, and resumes to completion."""
    add_demo("shapes", "shapes")  # STALE_SECONDS as shipped: no waiting for a heartbeat rule
    store, log = Store(), tmp_path / "train.log"
    process = start(train_command("stopped-by-hand", resume=False), studio_home, log)
    run_id = wait_until_training(store, "stopped-by-hand", process, log)
    wait_for_a_random_moment(random.Random(0), runs_dir() / run_id / "log.txt", process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    process.stdout.close()
    run = store.get_run(run_id)
    assert run["status"] == "interrupted" and "Ctrl-C" in run["error"]
    listed = runs_list(Namespace(json=True))[0]["runs"]
    assert [r["status"] for r in listed if r["run_id"] == run_id] == ["interrupted"]
    final = start(train_command("stopped-by-hand", resume=True), studio_home, log)
    out, _ = final.communicate(timeout=600)
    assert json.loads(out)["status"] == "completed"


# ------------------------------------------------------------- crashes inside a process

class Crash(BaseException):
    """Stands in for SIGKILL at an exact line: nothing in the engine catches it."""


def crash_after_saving(monkeypatch, stem: str, epoch: int) -> None:
    real = core.training.loop.save_checkpoint

    def save(folder, name, model, optimizer=None, state=None, **options):
        real(folder, name, model, optimizer, state, **options)
        progress = (state or {}).get("progress", state or {})
        if name == stem and progress.get("epoch") == epoch:
            raise Crash

    monkeypatch.setattr(core.training.loop, "save_checkpoint", save)


@pytest.mark.parametrize("stem", ["best", "last"])
def test_a_crash_right_after_a_checkpoint_loses_no_epoch_metrics(shapes, monkeypatch, stem):
    run_id = new_run(TrainConfig(data="shapes", epochs=3, device="cpu"), shapes)
    real_save = core.training.loop.save_checkpoint
    crash_after_saving(monkeypatch, stem, 2)
    with pytest.raises(Crash):
        execute_run(run_id, shapes)
    monkeypatch.setattr(core.training.loop, "save_checkpoint", real_save)
    assert core.runs.queue.reconcile(shapes) == [run_id]
    assert execute_run(run_id, shapes)["status"] == "completed"
    val_acc = shapes.metrics(run_id, names=["epoch/val_acc"])
    assert [row["epoch"] for row in val_acc] == [1, 2, 3]


def saved_pair(folder: Path) -> tuple[torch.nn.Module, dict]:
    model, optimizer = fresh_model_and_optimizer()
    save_checkpoint(folder, "last", model, optimizer, state={"progress": {"epoch": 1}})
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def bump(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)


def assert_previous_pair_loads(folder: Path, weights: dict) -> None:
    model, optimizer = fresh_model_and_optimizer()
    meta = load_checkpoint(folder, "last", model, optimizer)
    assert meta["progress"]["epoch"] == 1
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert temp_files(folder) == []


@pytest.mark.parametrize("failing_replace", [1, 2])
def test_a_checkpoint_write_that_dies_at_a_rename_leaves_the_previous_pair(
        tmp_path, monkeypatch, failing_replace):
    """Die at the tensors' rename (1) or the JSON's (2): the checkpoint read back is still the
    whole previous one, weights and state together."""
    model, weights = saved_pair(tmp_path)
    bump(model)
    calls, real_replace = [], os.replace

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == failing_replace:
            raise Crash
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(Crash):
        save_checkpoint(tmp_path, "last", model, state={"progress": {"epoch": 2}})
    monkeypatch.setattr(os, "replace", real_replace)
    if failing_replace == 2:  # the new tensors are in place, and carry their own state
        fresh, _ = fresh_model_and_optimizer()
        assert load_checkpoint(tmp_path, "last", fresh)["progress"]["epoch"] == 2
        assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
        assert temp_files(tmp_path) == []
        return
    assert_previous_pair_loads(tmp_path, weights)


def test_a_checkpoint_write_that_dies_inside_safetensors_leaves_the_previous_pair(
        tmp_path, monkeypatch):
    model, weights = saved_pair(tmp_path)
    bump(model)
    real_save = core.training.checkpoint.save_file

    def half_written(tensors, path, metadata=None):
        real_save(tensors, path, metadata=metadata)
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) // 2)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(core.training.checkpoint, "save_file", half_written)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, "last", model, state={"progress": {"epoch": 2}})
    assert_previous_pair_loads(tmp_path, weights)


def test_temp_files_left_by_a_killed_write_are_cleared_when_the_run_resumes(shapes):
    run_id = new_run(TrainConfig(data="shapes", epochs=1, device="cpu"), shapes)
    folder = runs_dir() / run_id
    for name in (".last.safetensors.abc123.tmp", ".best.json.def456.tmp"):
        (folder / name).write_bytes(b"half a checkpoint")  # what SIGKILL mid-write leaves
    assert execute_run(run_id, shapes)["status"] == "completed"
    assert temp_files(folder) == []


# ----------------------------------------------------- imports and caches killed halfway

KILLED_IMPORT = """
import os, signal, sys
from pathlib import Path
from tests.e2e.test_crash_recovery import pets
import core.data.build
from core.data.ingest import import_entries

die = lambda *args: os.kill(os.getpid(), signal.SIGKILL)
if sys.argv[1] == "rename":  # manifest written into the temp folder, not yet renamed
    core.data.build.Path.rename = die
else:  # half the images written
    real, calls = Path.write_bytes, []
    def write_bytes(path, data):
        calls.append(path)
        return die() if len(calls) == 6 else real(path, data)
    Path.write_bytes = write_bytes
import_entries(pets(), "pets")
"""

KILLED_CACHE = """
import os, signal
import core.data.cache
from core.data.cache import load_cache
from core.data.dataset import load_dataset

def decode(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
core.data.cache.decode_files = decode
load_cache(load_dataset("shapes"), 24)
"""


def killed(script: str, studio_home: Path, *args: str) -> None:
    env = os.environ | {"CNN_STUDIO_HOME": str(studio_home)}
    process = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, env=env,
                             capture_output=True, timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-2000:]


@pytest.mark.parametrize("moment", ["images", "rename"])
def test_an_import_killed_halfway_is_never_listed_and_its_litter_goes(studio_home, moment):
    from core.data.dataset import list_datasets, load_dataset

    killed(KILLED_IMPORT, studio_home, moment)
    litter = list((studio_home / "datasets").glob(".importing-pets-*"))
    assert len(litter) == 1  # SIGKILL runs no cleanup
    assert list_datasets() == []
    import_entries(pets(), "pets")  # the same name again: works, and sweeps the dead folder
    assert list_datasets() == ["pets"] and len(load_dataset("pets").items) == 12
    assert list((studio_home / "datasets").glob(".importing-*")) == []


def test_a_cache_build_killed_halfway_leaves_no_litter_after_the_next_build(shapes, studio_home):
    from core.data.cache import load_cache
    from core.data.dataset import load_dataset

    killed(KILLED_CACHE, studio_home)
    cache = studio_home / "datasets" / "shapes" / "cache"
    assert len(list(cache.glob("24px-*.tmp.npy"))) == 1
    images = load_cache(load_dataset("shapes"), 24)
    assert images.shape == (300, 24, 24, 3)
    assert temp_files(cache) == []


# ---------------------------------------------------------------------------- disk full

def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def pets(per_class: int = 6) -> list[tuple[str, bytes]]:
    from io import BytesIO

    from PIL import Image

    files = []
    for cls, colour in (("cat", (200, 20, 20)), ("dog", (20, 20, 200))):
        for i in range(per_class):
            buffer = BytesIO()
            Image.new("RGB", (8, 8), colour).save(buffer, "PNG")
            files.append((f"{cls}/{i}.png", buffer.getvalue()))
    return files


def test_disk_full_while_writing_images_fails_the_import_clearly(studio_home, monkeypatch):
    real_write, written = Path.write_bytes, []

    def write_bytes(path, data):
        written.append(path)
        if len(written) == 5:  # half a file lands, then the disk is full
            real_write(path, data[:len(data) // 2])
            raise no_space()
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(DatasetError, match="disk .* is full.*nothing was imported.*Free"):
        import_entries(pets(), "pets")
    assert list((studio_home / "datasets").iterdir()) == []


def test_disk_full_while_writing_the_manifest_fails_the_import_clearly(studio_home, monkeypatch):
    def fsync(fd):
        raise no_space()

    monkeypatch.setattr(core.durable.os, "fsync", fsync)
    with pytest.raises(DatasetError, match="disk .* is full"):
        import_entries(pets(), "pets")
    assert list((studio_home / "datasets").iterdir()) == []


def test_disk_full_while_building_the_cache_fails_the_run_clearly(shapes, monkeypatch):
    dataset_cache = Path(os.environ["CNN_STUDIO_HOME"]) / "datasets" / "shapes" / "cache"
    real_decode = core.data.cache.decode_files

    def decode(*args, **kwargs):
        raise no_space()

    monkeypatch.setattr(core.data.cache, "decode_files", decode)
    run_id = new_run(TrainConfig(data="shapes", epochs=1, device="cpu", image_size=24), shapes)
    result = execute_run(run_id, shapes)
    assert result["status"] == "failed"
    assert "disk" in result["error"] and "full" in result["error"]
    assert temp_files(dataset_cache) == []
    monkeypatch.setattr(core.data.cache, "decode_files", real_decode)


def test_disk_full_while_checkpointing_fails_the_run_clearly_and_it_resumes(shapes, monkeypatch):
    real_save, saves = core.training.checkpoint.save_file, []

    def save_file(tensors, path, metadata=None):
        saves.append(path)
        if len(saves) > 2:  # epoch 1's best and last are written, then the disk fills
            with open(path, "wb") as handle:
                handle.write(b"\0" * 1000)
            raise no_space()
        return real_save(tensors, path, metadata=metadata)

    monkeypatch.setattr(core.training.checkpoint, "save_file", save_file)
    run_id = new_run(TrainConfig(data="shapes", epochs=2, device="cpu"), shapes)
    result = execute_run(run_id, shapes)
    run = shapes.get_run(run_id)
    assert result["status"] == run["status"] == "failed"
    assert "disk" in run["error"] and "full" in run["error"] and "resume" in run["error"].lower()
    folder = runs_dir() / run_id
    assert temp_files(folder) == []
    assert check_checkpoints_load(folder) == 1  # epoch 1's checkpoint is whole

    monkeypatch.setattr(core.training.checkpoint, "save_file", real_save)
    assert execute_run(run_id, shapes)["status"] == "completed"
    val_acc = shapes.metrics(run_id, names=["epoch/val_acc"])
    assert [row["epoch"] for row in val_acc] == [1, 2]
