"""Recipes: one name → a whole config, adapted to the dataset; flags override it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

import core.training.recipes
from core.cli import build_parser
from core.cli.train import config_from_args
from core.config import TrainConfig
from core.training.loop import fit
from core.training.recipes import (
    RECIPES,
    SPEED_RUN_BATCH,
    ema_decay_for,
    recipe_config,
    recipe_settings,
    speed_run_batch,
)


@dataclass
class FakeDataset:
    """What a recipe reads of a dataset: its name, image size and training-split size."""
    size: int
    train: int
    name: str = "fake"

    def indices(self, split: str) -> list[int]:
        return list(range(self.train)) if split == "train" else []


@pytest.fixture
def fake_sizes(monkeypatch):
    monkeypatch.setattr(core.training.recipes, "default_image_size", lambda dataset: dataset.size)


def test_speed_run_on_a_fashion_mnist_sized_set_is_the_speed_run_recipe(fake_sizes) -> None:
    settings = recipe_settings("speed-run", FakeDataset(size=28, train=54_000))
    assert settings["model"] == "resnet9" and settings["recipe"] == "speed-run"
    assert settings["batch_size"] == SPEED_RUN_BATCH == 512
    assert (settings["optimizer"], settings["nesterov"], settings["schedule"]) == (
        "sgd", True, "onecycle")
    assert settings["lr"] == pytest.approx(0.4) and settings["epochs"] == 10
    assert settings["label_smoothing"] == pytest.approx(0.2)
    assert settings["tta_flip"] and settings["flip"] == "auto" and settings["pad_crop"] == 2
    assert settings["image_size"] is None  # the dataset's own 28 px
    assert settings["ema_decay"] is None
    TrainConfig(data="fake", **settings).validate()


def test_the_cpu_recipes_are_tiny_bn_pooled_and_adapt_their_epochs(fake_sizes) -> None:
    settings = recipe_settings("cpu-quick", FakeDataset(size=28, train=54_000))
    quick = (settings["model"], settings["batch_size"], settings["epochs"])
    assert quick == ("tiny-bn-pooled", 256, 4)
    assert settings["optimizer"] == "adamw" and settings["tta_flip"] and not settings["compile"]
    assert settings["label_smoothing"] == pytest.approx(0.1) and settings["pad_crop"] is None
    TrainConfig(data="fake", **settings).validate()
    longer = recipe_settings("cpu-accurate", FakeDataset(size=28, train=54_000))
    assert (longer["model"], longer["batch_size"], longer["epochs"]) == ("tiny-bn-pooled", 128, 12)
    small = recipe_settings("cpu-quick", FakeDataset(size=16, train=300))
    assert small["batch_size"] == 32 and small["epochs"] == 40  # 9 steps an epoch: 400 capped


def test_cpu_recipes_train_in_bf16_only_where_the_cpu_has_it(fake_sizes, monkeypatch) -> None:
    monkeypatch.setattr(core.training.recipes, "cuda_available", lambda: False)
    monkeypatch.setattr(core.training.recipes, "fast_cpu_bf16", lambda: True)
    assert recipe_settings("cpu-quick", FakeDataset(size=28, train=1000))["precision"] == "bf16"
    monkeypatch.setattr(core.training.recipes, "fast_cpu_bf16", lambda: False)
    assert recipe_settings("cpu-quick", FakeDataset(size=28, train=1000))["precision"] == "auto"


def test_speed_run_adapts_to_small_sets_and_large_images(fake_sizes) -> None:
    small = recipe_settings("speed-run", FakeDataset(size=16, train=1_439))
    assert small["batch_size"] == 128  # 1439 / 8 steps → the power of two below
    assert small["lr"] == pytest.approx(0.4 * 128 / 512)  # scaled with the batch
    assert small["epochs"] * (1_439 // 128) >= 400 and small["epochs"] <= 40
    tiny = recipe_settings("speed-run", FakeDataset(size=32, train=5))
    assert 1 <= tiny["batch_size"] <= 5
    large = recipe_settings("speed-run", FakeDataset(size=224, train=10_000))
    assert large["image_size"] == 64 and large["pad_crop"] == 4
    with pytest.raises(ValueError, match="no training images"):
        recipe_settings("speed-run", FakeDataset(size=32, train=0))


@pytest.mark.parametrize("train", [1, 7, 100, 4_096, 10**6])
def test_speed_run_batch_never_exceeds_the_set_or_the_cap(train: int) -> None:
    batch = speed_run_batch(train)
    assert 1 <= batch <= min(train, SPEED_RUN_BATCH)
    assert batch & (batch - 1) == 0 or batch == train  # a power of two unless the whole set


def test_the_ema_recipe_turns_on_an_ema_sized_to_the_run(fake_sizes) -> None:
    settings = recipe_settings("speed-run-ema", FakeDataset(size=28, train=54_000))
    assert settings["ema_decay"] == ema_decay_for(10 * (54_000 // 512))
    assert 0.9 <= settings["ema_decay"] < 1
    assert ema_decay_for(10) == pytest.approx(0.9) and ema_decay_for(10_000) == 0.999


def test_an_unknown_recipe_names_the_ones_there_are(shapes_dataset) -> None:
    with pytest.raises(ValueError, match="choose one of speed-run"):
        recipe_config("warp-speed", "shapes")


def test_flags_override_the_recipe_on_the_command_line(shapes_dataset) -> None:
    args = build_parser().parse_args(["train", "--data", "shapes", "--recipe", "speed-run",
                                      "--epochs", "3", "--batch-size", "32", "--no-flip",
                                      "--no-tta-flip", "--ema-decay", "0.99"])
    config = config_from_args(args)
    assert config.recipe == "speed-run" and config.model == "resnet9"
    assert (config.epochs, config.batch_size, config.flip, config.tta_flip) == (3, 32, "off",
                                                                                 False)
    assert config.ema_decay == 0.99
    assert config.optimizer == "sgd" and config.label_smoothing == 0.2  # the recipe's
    kept = config_from_args(build_parser().parse_args(["train", "--data", "shapes", "--recipe",
                                                       "speed-run-ema", "--compile"]))
    assert kept.tta_flip and kept.compile and kept.ema_decay
    off = config_from_args(build_parser().parse_args(["train", "--data", "shapes", "--recipe",
                                                      "speed-run-ema", "--ema-decay", "0"]))
    assert off.ema_decay is None
    plain = config_from_args(build_parser().parse_args(["train", "--data", "shapes",
                                                        "--model", "tiny-cnn"]))
    assert plain == TrainConfig(data="shapes", model="tiny-cnn")


def test_a_recipe_needs_a_dataset_to_adapt_to() -> None:
    args = build_parser().parse_args(["lr-find", "--recipe", "speed-run"])
    with pytest.raises(ValueError, match="--data"):
        config_from_args(args)


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_every_recipe_trains_the_shapes_demo(shapes_dataset, tmp_path) -> None:
    for name in RECIPES:
        config = recipe_config(name, "shapes", {"epochs": 1, "device": "cpu", "compile": False})
        result = fit(config, tmp_path / name)
        assert result["status"] == "completed", name
        # 240 training images: batch 16 (240 / 8 steps → the power of two below), 15 steps
        assert (result["batch_size"], result["steps"]) == (16, 15), name
        assert result["test_acc"] is not None


def test_the_suggested_recipe_follows_the_device() -> None:
    assert core.training.recipes.suggested_recipe(has_gpu=True) == "speed-run"
    assert core.training.recipes.suggested_recipe(has_gpu=False) == "cpu-quick"
    assert {"speed-run", "cpu-quick"} <= set(RECIPES)


def test_a_config_changed_from_its_recipe_records_what_changed(shapes_dataset) -> None:
    from core.data.dataset import load_dataset
    from core.runs.card import recipe_text
    from core.training.recipes import mark_recipe_changes

    as_is = recipe_config("cpu-quick", "shapes", {"name": "mine"})  # a name is no change
    assert "recipe_changed" not in as_is.extra and recipe_text(as_is.to_dict()) == "cpu-quick"
    changed = recipe_config("cpu-quick", "shapes", {"epochs": 2, "jitter": 0.1})
    assert changed.extra["recipe_changed"] == ["epochs", "jitter"]
    assert recipe_text(changed.to_dict()) == "cpu-quick (modified: epochs, jitter)"
    back = dataclasses.replace(changed, epochs=as_is.epochs, jitter=as_is.jitter)
    assert "recipe_changed" not in mark_recipe_changes(back, load_dataset("shapes")).extra
    assert recipe_text(TrainConfig(data="shapes", model="tiny-cnn").to_dict()) is None
