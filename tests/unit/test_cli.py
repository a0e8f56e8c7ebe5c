"""The command line as scripts use it: `python -m core …` in a subprocess (DESIGN.md, Command line).

One workspace serves the whole module: a shapes dataset and one trained run are made once,
and the read-only commands run side by side, since every process pays for importing torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 180


@dataclass
class Outcome:
    args: list[str]
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        assert self.code == 0, self.stderr
        assert "Traceback" not in self.stdout + self.stderr
        lines = self.stdout.strip().splitlines()
        assert len(lines) == 1, f"stdout should hold one JSON line: {self.stdout!r}"
        return json.loads(lines[0])


def cli_env(home: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CNN_STUDIO_DB"}
    # One thread each: the commands run side by side, and oversubscribed cores crawl.
    return env | {"CNN_STUDIO_HOME": str(home), "CNN_STUDIO_DEBUG": "", "OMP_NUM_THREADS": "1"}


def cli_many(home: Path, commands: list[list[str]]) -> list[Outcome]:
    """Run `python -m core ARGS` for each command at once; outcomes in the same order."""
    processes = [subprocess.Popen([sys.executable, "-m", "core", *args], cwd=ROOT,
                                  env=cli_env(home), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                 for args in commands]
    outcomes = []
    for args, process in zip(commands, processes, strict=True):
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        outcomes.append(Outcome(args, process.returncode, stdout, stderr))
    return outcomes


def cli(home: Path, *args: str) -> Outcome:
    return cli_many(home, [list(args)])[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli") / "workspace"


@pytest.fixture(scope="module")
def demo(home: Path) -> Outcome:
    return cli(home, "data", "demo", "shapes", "--name", "s", "--json")


@pytest.fixture(scope="module")
def trained(home: Path, demo: Outcome) -> Outcome:
    return cli(home, "train", "--data", "s", "--model", "tiny-cnn", "--epochs", "2",
               "--device", "cpu", "--name", "first", "--json")


@pytest.fixture(scope="module")
def images(home: Path, demo: Outcome) -> list[Path]:
    folder = home.parent / "images"
    folder.mkdir()
    square = folder / "square.png"
    pixels = np.zeros((32, 32, 3), dtype=np.uint8)
    pixels[8:24, 8:24] = 230
    Image.fromarray(pixels).save(square)
    wide = folder / "wide.jpg"  # another size and format: the same preprocessing must apply
    Image.new("RGB", (64, 40), (30, 200, 90)).save(wide)
    return [square, wide]


@pytest.fixture(scope="module")
def reads(home: Path, trained: Outcome, images: list[Path]) -> dict[str, Outcome]:
    """The read-only commands, run side by side once the run is trained."""
    run_id = trained.json()["run_id"]
    commands = {
        "data list": ["data", "list", "--json"],
        "runs list": ["runs", "list", "--json"],
        "runs show": ["runs", "show", "first", "--json"],
        "predict": ["predict", "--run", run_id, *map(str, images), "--top-k", "2", "--json"],
    }
    return dict(zip(commands, cli_many(home, list(commands.values())), strict=True))


def test_data_demo_prints_one_json_object_with_the_import_keys(demo: Outcome) -> None:
    payload = demo.json()
    assert {"name", "classes", "counts", "kept", "dropped", "splits"} <= payload.keys()
    assert payload["name"] == "s"
    assert payload["classes"] == ["circle", "square", "triangle"]
    assert payload["counts"] == {"circle": 100, "square": 100, "triangle": 100}
    assert payload["kept"] == 300 and payload["dropped"] == []
    assert payload["splits"] == {"train": 240, "val": 30, "test": 30}


def test_data_list_lists_the_imported_dataset(reads: dict[str, Outcome]) -> None:
    payload = reads["data list"].json()
    [dataset] = payload["datasets"]
    assert dataset["name"] == "s" and dataset["kept"] == 300
    assert dataset["classes"] == ["circle", "square", "triangle"]


def test_train_prints_the_result_with_every_contract_key(trained: Outcome) -> None:
    payload = trained.json()
    contract = {"run_id", "status", "model", "data", "device", "epochs", "best_val_acc",
                "test_acc", "train_seconds", "train_images_per_s"}
    assert contract <= payload.keys()
    assert payload["status"] == "completed"
    assert (payload["model"], payload["data"], payload["device"]) == ("tiny-cnn", "s", "cpu")
    assert payload["epochs"] == 2
    assert 0 <= payload["best_val_acc"] <= 1 and 0 <= payload["test_acc"] <= 1
    assert payload["train_seconds"] > 0 and payload["train_images_per_s"] > 0
    assert "epoch" in trained.stderr  # progress went to stderr, not stdout


def test_runs_list_shows_the_trained_run(reads: dict[str, Outcome], trained: Outcome) -> None:
    payload = reads["runs list"].json()
    [run] = [run for run in payload["runs"] if run["run_id"] == trained.json()["run_id"]]
    assert {"run_id", "name", "status", "model", "data", "best_val_acc", "test_acc"} <= run.keys()
    assert (run["name"], run["status"], run["model"], run["data"]) == (
        "first", "completed", "tiny-cnn", "s")
    assert run["best_val_acc"] == trained.json()["best_val_acc"]
    assert run["test_acc"] == trained.json()["test_acc"]


def test_runs_show_finds_a_run_by_name_with_its_config_and_result(reads, trained) -> None:
    payload = reads["runs show"].json()
    assert payload["run_id"] == trained.json()["run_id"]
    assert payload["config"]["epochs"] == 2 and payload["config"]["model"] == "tiny-cnn"
    assert payload["result"]["status"] == "completed"


def test_predict_gives_sorted_top_k_probabilities_per_image(reads, images) -> None:
    payload = reads["predict"].json()
    predictions = payload["predictions"]
    assert [p["image"] for p in predictions] == [str(path) for path in images]
    for prediction in predictions:
        top = prediction["top"]
        assert len(top) == 2
        assert {entry["label"] for entry in top} <= {"circle", "square", "triangle"}
        probs = [entry["prob"] for entry in top]
        assert probs == sorted(probs, reverse=True)
        assert all(0 <= p <= 1 for p in probs) and sum(probs) <= 1 + 1e-6


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_train_resume_completes_a_stopped_run(home: Path, demo: Outcome, monkeypatch) -> None:
    from core.config import TrainConfig
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store
    from core.training.hooks import Hooks

    class StopAfterFirstEpoch(Hooks):
        epochs = 0

        def on_epoch(self, step, epoch, metrics) -> None:
            self.epochs = epoch

        def should_stop(self) -> bool:
            return self.epochs >= 1

    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    store = Store()
    config = TrainConfig(data="s", model="tiny-cnn", epochs=2, device="cpu", name="halfway")
    run_id = new_run(config, store, status="running")
    assert execute_run(run_id, store, [StopAfterFirstEpoch()])["status"] == "stopped"

    payload = cli(home, "train", "--resume", "halfway", "--json").json()
    assert payload["run_id"] == run_id
    assert payload["status"] == "completed" and payload["epochs"] == 2
    run = store.get_run(run_id)
    assert run["status"] == "completed" and run["epoch"] == 2
    log = (home / "runs" / run_id / "log.txt").read_text()
    assert "resumed_from_epoch=1" in log and log.count("epoch 1:") == 1


ERRORS = {
    "unknown dataset": (["train", "--data", "nope", "--model", "tiny-cnn", "--json"],
                        "no dataset named 'nope'"),
    "unknown model": (["train", "--data", "s", "--model", "no-such-net", "--epochs", "1",
                       "--json"], "no-such-net"),
    "missing image": (["predict", "--run", "first", "does-not-exist.png", "--json"],
                      "does-not-exist.png"),
    "resume of a completed run": (["train", "--resume", "first", "--json"], "can be resumed"),
}


@pytest.fixture(scope="module")
def errors(home: Path, trained: Outcome) -> dict[str, Outcome]:
    outcomes = cli_many(home, [args for args, _ in ERRORS.values()])
    return dict(zip(ERRORS, outcomes, strict=True))


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_exit_non_zero_with_one_sentence_on_stderr_and_nothing_on_stdout(
        errors: dict[str, Outcome], case: str) -> None:
    outcome, mention = errors[case], ERRORS[case][1]
    assert outcome.code != 0
    assert outcome.stdout == ""
    assert "Traceback" not in outcome.stderr
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert lines[0].startswith("error: ") and mention in lines[0]


def test_a_refused_model_leaves_no_run_behind(home: Path, errors, monkeypatch) -> None:
    from core.store import Store

    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    assert all(run["model"] != "no-such-net" for run in Store().list_runs())


def test_the_command_line_loads_torch_only_for_commands_that_need_it():
    """`runs list`, `data list` and `--help` answer in a fraction of a second: importing the CLI,
    the job queue and the run records must not import torch (seconds) or timm."""
    probe = ("import sys, core.cli, core.runs.queue, core.runs.record, core.training.recipes; "
             "print(sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    assert out.strip() == "[]"
