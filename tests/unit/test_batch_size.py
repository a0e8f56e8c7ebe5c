"""Auto batch size: the search on out-of-memory, the margin, the memory of past searches."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

import core.training.batch_size
from core.cli import build_parser
from core.cli.train import batch_size_arg, config_from_args
from core.config import AUTO_BATCH, TrainConfig
from core.training.batch_size import (
    MAX_AUTO_BATCH,
    NO_PROBE_BATCH,
    auto_batch_size,
    largest_fitting,
    memory_file,
    settle,
    training_step,
)
from core.training.loop import fit
from core.training.model_card import read_model_card


class OutOfMemoryAbove:
    """A training step that runs out of memory for batches above `limit`; logs each try."""

    def __init__(self, limit: int) -> None:
        self.limit, self.tried = limit, []

    def __call__(self, batch: int) -> None:
        self.tried.append(batch)
        if batch > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (batch {batch})")


@pytest.mark.slow  # make test only; make test-fast leaves it out
@pytest.mark.parametrize("limit", [5, 16, 300, 777, 1023])
def test_search_finds_the_largest_batch_that_fits_within_a_multiple(limit: int) -> None:
    step = OutOfMemoryAbove(limit)
    found = largest_fitting(step)
    assert found <= limit
    assert found > limit - 8 or limit < 16  # settled to within a gap of 8
    assert len(step.tried) < 20
    assert settle(found) <= found and (settle(found) % 8 == 0 or found <= 8)


def test_search_stops_at_the_cap_when_nothing_runs_out() -> None:
    step = OutOfMemoryAbove(10**9)
    assert largest_fitting(step) == MAX_AUTO_BATCH
    assert max(step.tried) == MAX_AUTO_BATCH


def test_not_even_one_image_fitting_is_an_error_a_person_can_act_on() -> None:
    with pytest.raises(torch.OutOfMemoryError, match="smaller model or image size"):
        largest_fitting(OutOfMemoryAbove(0))


def probe_args(train_size: int = 10_000) -> dict:
    return {"in_chans": 3, "image_size": 32, "num_classes": 3, "precision": "bf16",
            "autocast": lambda: torch.autocast("cpu", enabled=False), "train_size": train_size}


def test_auto_batch_size_probes_once_then_remembers(studio_home, monkeypatch) -> None:
    monkeypatch.setattr(core.training.batch_size, "can_probe", lambda device: True)
    step = OutOfMemoryAbove(300)
    monkeypatch.setattr(core.training.batch_size, "training_step",
                        lambda config, model, device, batch, **kw: step(batch))
    config = TrainConfig(data="shapes", model="tiny-cnn", batch_size=AUTO_BATCH)
    model, cpu = torch.nn.Linear(2, 2), torch.device("cpu")
    first = auto_batch_size(config, model, cpu, **probe_args())
    assert first <= 300 * 0.9 and first % 8 == 0 and first >= 256
    assert step.tried and max(step.tried) > 300  # it did hit the limit
    saved = json.loads(memory_file().read_text())
    assert list(saved.values()) == [first]
    assert "tiny-cnn|32px|3ch|bf16|cpu" in saved

    def must_not_probe(*args, **kwargs):
        raise AssertionError("probed again although the answer was remembered")

    monkeypatch.setattr(core.training.batch_size, "training_step", must_not_probe)
    assert auto_batch_size(config, model, cpu, **probe_args()) == first
    assert auto_batch_size(config, model, cpu, **probe_args(train_size=100)) == 100  # capped
    other = probe_args() | {"image_size": 64}  # another key: a new search
    with pytest.raises(AssertionError, match="probed again"):
        auto_batch_size(config, model, cpu, **other)


def test_a_cpu_gets_a_fixed_batch_without_probing(studio_home, monkeypatch) -> None:
    monkeypatch.setattr(core.training.batch_size, "training_step",
                        lambda *a, **k: pytest.fail("probed"))
    config = TrainConfig(data="shapes", batch_size=AUTO_BATCH)
    cpu = torch.device("cpu")
    assert auto_batch_size(config, torch.nn.Linear(2, 2), cpu, **probe_args()) == NO_PROBE_BATCH
    assert auto_batch_size(config, torch.nn.Linear(2, 2), cpu, **probe_args(50)) == 50
    assert not memory_file().exists()


def test_a_probe_step_leaves_the_runs_model_untouched() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Flatten(), torch.nn.LazyLinear(3))
    model(torch.randn(2, 3, 8, 8))  # materialise the lazy layer
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training_step(TrainConfig(data="d", optimizer="sgd", lr=1.0), model, torch.device("cpu"), 8,
                  in_chans=3, image_size=8, num_classes=3,
                  autocast=lambda: torch.autocast("cpu", enabled=False))
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_an_auto_run_records_its_batch_and_a_resume_keeps_it(shapes_dataset, tmp_path,
                                                             monkeypatch) -> None:
    run_dir = tmp_path / "run"
    config = TrainConfig(data="shapes", model="tiny-cnn", epochs=1, device="cpu",
                         batch_size=AUTO_BATCH)
    result = fit(config, run_dir)
    assert result["status"] == "completed"
    assert result["batch_size"] == NO_PROBE_BATCH == config.batch_size
    assert result["steps"] == 240 // NO_PROBE_BATCH
    assert read_model_card(run_dir)["batch_size"] == NO_PROBE_BATCH

    monkeypatch.setattr(core.training.batch_size, "NO_PROBE_BATCH", 16)  # a different answer now...
    resumed = TrainConfig(data="shapes", model="tiny-cnn", epochs=2, device="cpu",
                          batch_size=AUTO_BATCH)
    again = fit(resumed, run_dir, resume=True)
    assert again["batch_size"] == NO_PROBE_BATCH  # ...but the resumed run keeps its own


def test_batch_size_auto_on_the_command_line() -> None:
    assert batch_size_arg("auto") == batch_size_arg("AUTO") == AUTO_BATCH
    assert batch_size_arg("96") == 96
    for bad in ("0", "-3", "big"):
        with pytest.raises(argparse.ArgumentTypeError):
            batch_size_arg(bad)
    args = build_parser().parse_args(["train", "--data", "d", "--model", "tiny-cnn",
                                      "--batch-size", "auto"])
    assert config_from_args(args).batch_size == AUTO_BATCH
