"""Running out of device memory: the run shrinks its batch instead of dying."""

import pytest
import torch

import core.runs.execute
from core.config import TrainConfig
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store


@pytest.fixture()
def shapes(shapes_dataset) -> Store:
    return Store()


def fake_oom_until(batch_size: int, monkeypatch) -> list[int]:
    """Make fit raise OutOfMemoryError while the batch is larger than batch_size."""
    real_fit, tried = core.runs.execute.fit, []

    def fit(config, folder, hooks, resume=False):
        tried.append(config.batch_size)
        if config.batch_size > batch_size:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_fit(config, folder, hooks, resume=resume)

    monkeypatch.setattr(core.runs.execute, "fit", fit)
    return tried


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_out_of_memory_halves_the_batch_and_notes_it_on_the_run(shapes, monkeypatch):
    tried = fake_oom_until(16, monkeypatch)
    run_id = new_run(TrainConfig(data="shapes", epochs=1, batch_size=64), shapes)
    result = execute_run(run_id, shapes)
    assert tried == [64, 32, 16]
    assert result["status"] == "completed"
    assert len(result["notes"]) == 2 and "continued at 16" in result["notes"][-1]
    assert shapes.get_run(run_id)["config"]["batch_size"] == 16


def test_out_of_memory_at_the_smallest_batch_fails_with_what_to_change(shapes, monkeypatch):
    fake_oom_until(1, monkeypatch)
    run_id = new_run(TrainConfig(data="shapes", epochs=1, batch_size=8), shapes)
    result = execute_run(run_id, shapes)
    assert result["status"] == "failed"
    assert "Lower the batch size" in result["error"]
    assert shapes.get_run(run_id)["status"] == "failed"
