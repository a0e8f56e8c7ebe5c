"""The training loop: learning, resume, failure and stop paths, checkpoints, schedules."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from shapes import shapes_config

import core.training.device
import core.training.loop
from core.config import OPTIMIZERS, SCHEDULES, TrainConfig
from core.data.catalog import add_demo
from core.training.checkpoint import load_checkpoint
from core.training.device import CompiledForward, compile_modes
from core.training.ema import WeightEMA
from core.training.hooks import Hooks
from core.training.loop import Progress, fit, steady_throughput
from core.training.model_card import read_model_card
from core.training.optim import make_optimizer
from core.training.schedule import lr_curve, lr_factor, one_cycle
from models import create_model

EXPECTED_OPTIMIZER = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam,
                      "adamw": torch.optim.AdamW, "rmsprop": torch.optim.RMSprop}


class Recorder(Hooks):
    """Keeps every event; asks to stop once `stop_after` epochs are done (None: never)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after
        self.events: list[tuple] = []
        self.epochs: list[dict] = []

    def on_start(self, info: dict) -> None:
        self.events.append(("start", info))

    def on_step(self, step: int, epoch: float, metrics: dict) -> None:
        self.events.append(("step", step, epoch, metrics))

    def on_epoch(self, step: int, epoch: int, metrics: dict) -> None:
        self.events.append(("epoch", step, epoch, metrics))
        self.epochs.append(metrics)

    def on_end(self, result: dict) -> None:
        self.events.append(("end", result))

    def should_stop(self) -> bool:
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def all_finite(path: Path) -> bool:
    return all(torch.isfinite(value).all() for value in tensors(path).values()
               if value.is_floating_point())


# Learning ---------------------------------------------------------------------------------


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_tiny_cnn_learns_shapes_to_high_validation_and_test_accuracy(studio_home, tmp_path):
    add_demo("shapes", "shapes", val=0.2, test=0.2)  # 60 val / 60 test: steadier accuracy
    config = shapes_config(epochs=12, lr=5e-3, batch_size=32)
    result = fit(config, tmp_path / "run")
    assert result["status"] == "completed" and result["error"] is None
    assert result["epochs"] == 12 and result["steps"] == 12 * (180 // 32)
    assert result["best_val_acc"] >= 0.9
    assert result["test_acc"] >= 0.9
    assert result["device"] == "cpu" and result["image_size"] == 32
    assert result["train_images_per_s"] > 0 and result["train_seconds"] > 0
    assert [row["class"] for row in result["per_class"]] == ["circle", "square", "triangle"]
    assert sum(map(sum, result["confusion"])) == 60
    assert (tmp_path / "run" / "confusion_test.npy").exists()


def test_hooks_hear_start_steps_every_epoch_and_end_in_order(shapes_dataset, tmp_path):
    recorder = Recorder()
    result = fit(shapes_config(epochs=2), tmp_path / "run", [recorder])
    kinds = [event[0] for event in recorder.events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epoch") == 2
    start = recorder.events[0][1]
    assert (start["train"], start["val"], start["test"], start["resumed_from_epoch"]) == (
        240, 30, 30, 0)
    epochs = [event for event in recorder.events if event[0] == "epoch"]
    assert [(step, epoch) for _, step, epoch, _ in epochs] == [(3, 1), (6, 2)]
    assert {"train_loss", "train_acc", "val_loss", "val_acc", "lr"} <= set(epochs[0][3])
    steps = [event[1] for event in recorder.events if event[0] == "step"]
    assert steps == sorted(steps) and steps[-1] == 6
    assert recorder.events[-1][1] is result


# Resume -----------------------------------------------------------------------------------


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_resumed_run_matches_uninterrupted_run(shapes_dataset, tmp_path):
    config = shapes_config(epochs=2)
    straight = fit(config, tmp_path / "straight")
    assert straight["status"] == "completed"

    first = fit(shapes_config(epochs=2), tmp_path / "resumed", [Recorder(stop_after=1)])
    assert first["status"] == "stopped" and first["epochs"] == 1
    recorder = Recorder()
    second = fit(shapes_config(epochs=2), tmp_path / "resumed", [recorder], resume=True)
    assert second["status"] == "completed" and second["epochs"] == 2
    assert recorder.events[0][1]["resumed_from_epoch"] == 1
    assert len(recorder.epochs) == 1  # only epoch 2 was trained again

    expected = tensors(tmp_path / "straight" / "last.safetensors")
    actual = tensors(tmp_path / "resumed" / "last.safetensors")
    assert expected.keys() == actual.keys()
    assert any(key.startswith("optim.") for key in actual)
    for key, value in expected.items():
        assert torch.allclose(actual[key].float(), value.float(), atol=1e-6, rtol=0), key
    assert second["steps"] == straight["steps"]
    assert second["best_val_acc"] == straight["best_val_acc"]


def test_resume_without_a_checkpoint_starts_from_the_beginning(shapes_dataset, tmp_path):
    recorder = Recorder()
    result = fit(shapes_config(epochs=1), tmp_path / "run", [recorder], resume=True)
    assert result["status"] == "completed" and result["epochs"] == 1
    assert recorder.events[0][1]["resumed_from_epoch"] == 0


# Failure and stop -------------------------------------------------------------------------


class PoisonedLoss:
    """Stands in for torch.nn.functional inside core.training.loop: the `at`-th loss is poisoned.

    "loss": the loss itself is NaN. "gradient": the loss is finite but its gradient is NaN
    (torch.where's untaken branch), so the weights go bad while the loss still looks fine.
    """

    def __init__(self, at: int, kind: str) -> None:
        self.at, self.kind, self.calls = at, kind, 0

    def cross_entropy(self, *args, **kwargs) -> torch.Tensor:
        loss = F.cross_entropy(*args, **kwargs)
        self.calls += 1
        if self.calls != self.at:
            return loss
        if self.kind == "loss":
            return loss * float("nan")
        return torch.where(torch.ones((), dtype=torch.bool), loss, torch.sqrt(-loss))


def test_non_finite_loss_fails_the_run_and_keeps_the_last_good_best_checkpoint(
        shapes_dataset, tmp_path, monkeypatch):
    poison = PoisonedLoss(at=5, kind="loss")
    monkeypatch.setattr(core.training.loop, "F", poison)  # epoch 2, step 2
    run_dir = tmp_path / "run"
    result = fit(shapes_config(epochs=3), run_dir)
    assert poison.calls >= poison.at
    assert result["status"] == "failed"
    assert "nan" in result["error"] and "learning rate" in result["error"]
    assert result["epochs"] == 1
    assert json.loads((run_dir / "best.json").read_text())["epoch"] == 1
    assert all_finite(run_dir / "best.safetensors") and all_finite(run_dir / "last.safetensors")
    assert result["test_acc"] is not None  # tested on the best checkpoint that was kept


def test_weights_gone_non_finite_fail_the_run_without_a_non_finite_checkpoint(
        shapes_dataset, tmp_path, monkeypatch):
    # The last step of the last epoch (2) has a finite loss but NaN gradients: the weights that
    # epoch 2 ends with are NaN, though no training loss ever was.
    poison = PoisonedLoss(at=6, kind="gradient")
    monkeypatch.setattr(core.training.loop, "F", poison)
    run_dir = tmp_path / "run"
    result = fit(shapes_config(epochs=2), run_dir)
    assert poison.calls == poison.at
    assert result["status"] == "failed" and result["error"]
    assert result["epochs"] == 1
    for stem in ("best", "last"):
        assert all_finite(run_dir / f"{stem}.safetensors"), stem
        assert json.loads((run_dir / f"{stem}.json").read_text()) != {}
    assert json.loads((run_dir / "last.json").read_text())["progress"]["epoch"] == 1


def test_non_finite_weights_in_the_first_epoch_never_reach_a_best_checkpoint(
        shapes_dataset, tmp_path, monkeypatch):
    poison = PoisonedLoss(at=3, kind="gradient")
    monkeypatch.setattr(core.training.loop, "F", poison)  # end of epoch 1
    run_dir = tmp_path / "run"
    result = fit(shapes_config(epochs=2), run_dir)
    assert poison.calls == poison.at
    assert result["status"] == "failed"
    assert result["best_val_acc"] is None and result["test_acc"] is None
    assert not (run_dir / "best.safetensors").exists()


def test_stop_request_ends_the_run_stopped_with_nothing_tested(shapes_dataset, tmp_path):
    result = fit(shapes_config(epochs=5), tmp_path / "run", [Recorder(stop_after=0)])
    assert result["status"] == "stopped" and result["error"] is None
    assert result["epochs"] == 0
    assert result["best_val_acc"] is None and result["test_acc"] is None


def test_stop_request_after_an_epoch_keeps_its_checkpoints_and_tests_the_best(
        shapes_dataset, tmp_path):
    run_dir = tmp_path / "run"
    result = fit(shapes_config(epochs=5), run_dir, [Recorder(stop_after=1)])
    assert result["status"] == "stopped" and result["epochs"] == 1
    assert json.loads((run_dir / "last.json").read_text())["progress"]["epoch"] == 1
    assert result["test_acc"] is not None


def test_early_stopping_ends_after_patience_epochs_without_val_loss_improvement(
        shapes_dataset, tmp_path, monkeypatch):
    val_losses = iter([1.0, 0.9, 0.95, 0.8, 0.85, 0.86, 0.5, 0.4, 0.3, 0.2])
    real_evaluate = core.training.loop.evaluate

    def evaluate(*args, **kwargs) -> dict:
        return real_evaluate(*args, **kwargs) | {"loss": next(val_losses)}

    monkeypatch.setattr(core.training.loop, "evaluate", evaluate)
    recorder = Recorder()
    result = fit(shapes_config(epochs=10, patience=2), tmp_path / "run", [recorder])
    # improvement at 1, 2 and 4 resets the count; 5 and 6 do not improve on 0.8: stop after 6
    assert result["status"] == "completed"
    assert result["epochs"] == 6
    assert [metrics["val_loss"] for metrics in recorder.epochs] == [1.0, 0.9, 0.95, 0.8, 0.85,
                                                                     0.86]


def test_without_patience_a_run_trains_every_epoch_whatever_the_val_loss(
        shapes_dataset, tmp_path, monkeypatch):
    real_evaluate = core.training.loop.evaluate
    monkeypatch.setattr(core.training.loop, "evaluate",
                        lambda *a, **k: real_evaluate(*a, **k) | {"loss": 1.0})
    result = fit(shapes_config(epochs=3, patience=0), tmp_path / "run")
    assert result["epochs"] == 3


def test_throughput_leaves_out_the_first_epoch_when_there_are_several() -> None:
    several = Progress(epoch_seconds=[10.0, 1.0, 3.0], epoch_images=[100, 100, 300])
    assert steady_throughput(several) == pytest.approx(100.0)
    assert steady_throughput(Progress(epoch_seconds=[4.0], epoch_images=[100])) == 25.0
    assert steady_throughput(Progress()) is None


# Checkpoints ------------------------------------------------------------------------------


def test_checkpoints_are_safetensors_and_json_and_load_without_pickle(
        shapes_dataset, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    fit(shapes_config(epochs=1), run_dir)
    for stem in ("best", "last"):
        assert (run_dir / f"{stem}.safetensors").exists() and (run_dir / f"{stem}.json").exists()
    with safe_open(str(run_dir / "best.safetensors"), framework="pt") as handle:
        names = list(handle.keys())
    assert names and all(name.startswith("model.") for name in names)
    last_meta = json.loads((run_dir / "last.json").read_text())
    assert last_meta["progress"]["epoch"] == 1 and "param_groups" in last_meta["optimizer"]
    assert not list(run_dir.glob("*.pt")) and not list(run_dir.glob("*.pth"))

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint load used pickle")

    for target, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(target, name, refuse)
    card = read_model_card(run_dir)
    assert card["classes"] == ["circle", "square", "triangle"] and card["image_size"] == 32
    model = create_model(card["model"], in_chans=card["in_chans"],
                         num_classes=len(card["classes"]), image_size=card["image_size"])
    optimizer = make_optimizer(shapes_config(), model)
    meta = load_checkpoint(run_dir, "last", model, optimizer)
    assert meta["progress"]["epoch"] == 1
    assert len(optimizer.state) == len(list(model.parameters()))
    saved = tensors(run_dir / "last.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[f"model.{key}"])


# Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_each_optimizer_trains_an_epoch(shapes_dataset, tmp_path, optimizer: str):
    config = shapes_config(epochs=1, optimizer=optimizer, weight_decay=0.01)
    layer = torch.nn.Linear(2, 2)
    made = make_optimizer(config, layer)
    assert isinstance(made, EXPECTED_OPTIMIZER[optimizer])
    decays = {id(p): group["weight_decay"] for group in made.param_groups for p in group["params"]}
    assert (decays[id(layer.weight)], decays[id(layer.bias)]) == (0.01, 0.0)  # none on biases
    recorder = Recorder()
    result = fit(config, tmp_path / "run", [recorder])
    assert result["status"] == "completed" and result["epochs"] == 1
    assert math.isfinite(recorder.epochs[0]["train_loss"])


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_each_schedule_trains_an_epoch_at_the_rate_it_prescribes(shapes_dataset, tmp_path,
                                                                   schedule: str):
    config = shapes_config(epochs=1, schedule=schedule, lr=0.01, warmup_epochs=0.5,
                           step_size=1, gamma=0.5)
    recorder = Recorder()
    result = fit(config, tmp_path / "run", [recorder])
    assert result["status"] == "completed"
    last_step = result["steps"] - 1
    expected = 0.01 * lr_factor(config, last_step, steps_per_epoch=3)
    assert recorder.epochs[0]["lr"] == pytest.approx(expected)


def test_label_smoothing_trains_and_changes_the_loss(shapes_dataset, tmp_path):
    losses = []
    for smoothing in (0.0, 0.2):
        recorder = Recorder()
        result = fit(shapes_config(epochs=1, label_smoothing=smoothing),
                     tmp_path / f"run-{smoothing}", [recorder])
        assert result["status"] == "completed"
        losses.append(recorder.epochs[0]["train_loss"])
    assert all(math.isfinite(loss) for loss in losses)
    assert losses[0] != pytest.approx(losses[1])


@pytest.mark.parametrize(("settings", "complaint"), [
    ({"optimizer": "lbfgs"}, "optimizer must be one of"),
    ({"schedule": "exponential"}, "schedule must be one of"),
    ({"lr": 1e6}, "learning rate"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"label_smoothing": 1.0}, "label smoothing"),
])
def test_invalid_settings_are_refused_before_any_work(tmp_path, settings, complaint):
    with pytest.raises(ValueError, match=complaint):
        fit(shapes_config(**settings), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_config_from_dict_refuses_unknown_settings() -> None:
    assert TrainConfig.from_dict(shapes_config().to_dict()) == shapes_config()
    with pytest.raises(ValueError, match="unknown training settings: colour"):
        TrainConfig.from_dict(shapes_config().to_dict() | {"colour": "red"})


# Schedules --------------------------------------------------------------------------------


def test_one_cycle_rises_linearly_to_its_peak_at_a_quarter_then_falls_to_zero() -> None:
    assert one_cycle(0.0) == pytest.approx(0.04)
    assert one_cycle(0.125) == pytest.approx(0.52)
    assert one_cycle(0.25) == pytest.approx(1.0)
    assert one_cycle(0.625) == pytest.approx(0.5)
    assert one_cycle(1.0) == pytest.approx(0.0)
    config = TrainConfig(data="d", epochs=4, schedule="onecycle")
    factors = [lr_factor(config, step, 25) for step in range(100)]
    assert max(range(100), key=factors.__getitem__) == 25
    assert factors[-1] < 0.02


def test_cosine_starts_at_the_peak_and_ends_near_zero() -> None:
    config = TrainConfig(data="d", epochs=10, schedule="cosine")
    factors = [lr_factor(config, step, 10) for step in range(100)]
    assert factors[0] == pytest.approx(1.0)
    assert factors[50] == pytest.approx(0.5)
    assert factors[-1] < 1e-3
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_warmup_rises_linearly_then_hands_over_to_the_schedule() -> None:
    config = TrainConfig(data="d", epochs=10, schedule="cosine", warmup_epochs=2)
    warmup = [lr_factor(config, step, 10) for step in range(20)]
    assert warmup == pytest.approx([(step + 1) / 20 for step in range(20)])
    assert lr_factor(config, 20, 10) == pytest.approx(1.0)
    constant = TrainConfig(data="d", epochs=10, schedule="constant", warmup_epochs=1)
    assert lr_factor(constant, 4, 10) == pytest.approx(0.5)
    assert lr_factor(constant, 50, 10) == 1.0


def test_step_schedule_decays_by_gamma_every_step_size_epochs() -> None:
    config = TrainConfig(data="d", epochs=30, schedule="step", step_size=10, gamma=0.1)
    assert [lr_factor(config, epoch * 5, 5) for epoch in (0, 9, 10, 19, 20, 29)] == \
        pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


def test_lr_curve_is_at_most_about_500_points_in_epochs_at_the_peak_scale() -> None:
    config = TrainConfig(data="d", epochs=100, schedule="onecycle", optimizer="sgd", lr=0.2)
    curve = lr_curve(config, steps_per_epoch=100)
    assert 400 <= len(curve) <= 501
    assert curve[0] == pytest.approx((0.0, 0.2 * 0.04))
    assert max(lr for _, lr in curve) == pytest.approx(0.2, rel=1e-2)
    assert curve[-1][0] < 100


# EMA of the weights -------------------------------------------------------------------------


def test_weight_ema_averages_weights_and_batchnorm_statistics() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = WeightEMA(model, decay=0.5)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(4.0)
        model[1].num_batches_tracked.fill_(7)
    ema.update(model, step=1000)  # past the warm-up: the decay is 0.5
    averaged = ema.module.state_dict()
    assert torch.allclose(averaged["0.weight"], start["0.weight"] + 0.5)
    assert torch.allclose(averaged["1.running_mean"], torch.full((2,), 2.0))
    assert averaged["1.num_batches_tracked"] == 7
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.5
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_weights_are_what_is_evaluated_and_kept_as_best(shapes_dataset, tmp_path,
                                                            monkeypatch):
    evaluated = []
    real_evaluate = core.training.loop.evaluate

    def evaluate(model, *args, **kwargs) -> dict:
        evaluated.append({k: v.clone() for k, v in model.state_dict().items()})
        return real_evaluate(model, *args, **kwargs)

    monkeypatch.setattr(core.training.loop, "evaluate", evaluate)
    run_dir = tmp_path / "run"
    result = fit(shapes_config(epochs=1, ema_decay=0.9), run_dir)
    assert result["status"] == "completed" and result["best_epoch"] == 1
    last, best = tensors(run_dir / "last.safetensors"), tensors(run_dir / "best.safetensors")
    assert {k for k in last if k.startswith("ema.")} == {f"ema.{k[6:]}" for k in best}
    weight = next(k[6:] for k in best if k.endswith("weight"))
    assert torch.equal(best[f"model.{weight}"], last[f"ema.{weight}"])  # best holds the EMA
    assert not torch.equal(best[f"model.{weight}"], last[f"model.{weight}"])  # not the live net
    assert torch.equal(evaluated[0][weight], best[f"model.{weight}"])  # validation used it too

    plain = fit(shapes_config(epochs=1), tmp_path / "plain")
    assert plain["status"] == "completed"
    assert not any(k.startswith("ema.") for k in tensors(tmp_path / "plain" / "last.safetensors"))


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_resume_with_ema_matches_an_uninterrupted_run(shapes_dataset, tmp_path):
    config = shapes_config(epochs=2, ema_decay=0.8)
    straight = fit(config, tmp_path / "straight")
    first = fit(shapes_config(epochs=2, ema_decay=0.8), tmp_path / "resumed",
                [Recorder(stop_after=1)])
    assert first["status"] == "stopped"
    second = fit(shapes_config(epochs=2, ema_decay=0.8), tmp_path / "resumed", resume=True)
    assert second["status"] == "completed" and second["epochs"] == 2
    for stem in ("last", "best"):
        expected = tensors(tmp_path / "straight" / f"{stem}.safetensors")
        actual = tensors(tmp_path / "resumed" / f"{stem}.safetensors")
        assert expected.keys() == actual.keys()
        for key, value in expected.items():
            assert torch.allclose(actual[key].float(), value.float(), atol=1e-6, rtol=0), key
    assert any(key.startswith("ema.") for key in tensors(tmp_path / "resumed" / "last.safetensors"))
    assert second["best_val_acc"] == straight["best_val_acc"]
    assert second["test_acc"] == straight["test_acc"]


def test_ema_decay_must_be_between_zero_and_one(tmp_path) -> None:
    with pytest.raises(ValueError, match="EMA decay"):
        fit(shapes_config(ema_decay=1.5), tmp_path / "run")


def test_configs_saved_before_the_new_settings_still_load() -> None:
    old = shapes_config().to_dict()
    for key in ("ema_decay", "recipe"):
        old.pop(key)
    assert TrainConfig.from_dict(old) == shapes_config()


# Compile: the "fastest" switch --------------------------------------------------------------


def test_cuda_graphs_are_tried_first_only_for_small_images_on_cuda() -> None:
    assert compile_modes(torch.device("cuda"), 28) == ("reduce-overhead", "default")
    assert compile_modes(torch.device("cuda"), 224) == ("default",)
    assert compile_modes(torch.device("cpu"), 28) == ("default",)


class FakeCompile:
    """Stands in for torch.compile: modes in `broken` give a forward that raises."""

    def __init__(self, broken: set[str]) -> None:
        self.broken, self.modes = broken, []

    def __call__(self, model, mode: str | None = None):
        mode = mode or "default"
        self.modes.append(mode)
        if mode not in self.broken:
            return model

        def fail(x):
            raise RuntimeError(f"{mode} cannot compile this")
        return fail


@pytest.mark.parametrize(("broken", "used"), [
    (set(), "reduce-overhead"),
    ({"reduce-overhead"}, "default"),
    ({"reduce-overhead", "default"}, "eager"),
])
def test_compiled_forward_falls_back_mode_by_mode(monkeypatch, broken, used) -> None:
    fake = FakeCompile(broken)
    monkeypatch.setattr(core.training.device.torch, "compile", fake)
    model = torch.nn.Linear(3, 2)
    forward = CompiledForward(model, ("reduce-overhead", "default"))
    x = torch.randn(4, 3)
    assert torch.equal(forward(x), model(x)) and torch.equal(forward(x), model(x))
    assert forward.mode == used
    assert len(forward.errors) == len(broken)
    assert all("cannot compile" in error for error in forward.errors)
    assert fake.modes == ["reduce-overhead", "default"][:len(broken) + 1]  # compiled once each


def test_a_run_whose_compilation_fails_trains_uncompiled(shapes_dataset, tmp_path,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(core.training.device.torch, "compile", FakeCompile({"default"}))
    result = fit(shapes_config(epochs=1, compile=True), tmp_path / "run")
    assert result["status"] == "completed" and result["compile_mode"] == "eager"
