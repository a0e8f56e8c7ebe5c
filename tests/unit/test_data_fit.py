"""Choices made from the data: the flip decision (mirror-sensitive vs mirror-safe sets), the
flip switch on the command line and in old configs, and what a run records."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from data_sets import arrow_dataset, arrows

from core.cli.train import add_setting_flags, given_settings
from core.config import TrainConfig
from core.data.demo import FASHION_CLASSES, FASHION_MNIST_DIR, shapes_arrays
from core.data.mirror import RETENTION_CUTOFF, decide_flip, resolve_flip


def test_a_set_whose_mirror_images_swap_classes_gets_flips_off() -> None:
    images, labels = arrows()
    decision = decide_flip(images, labels, ["left", "right"])
    assert not decision.flip
    assert decision.retention is not None and decision.retention < 0
    assert "flips off" in decision.reason and "look like `right`" in decision.reason \
        or "look like `left`" in decision.reason


def test_a_mirror_safe_set_gets_flips_on() -> None:
    images, labels = shapes_arrays(per_class=100)["all"]  # the demo itself
    decision = decide_flip(images, labels, ["circle", "square", "triangle"])
    assert decision.flip and decision.reason.startswith("flips on")
    assert decision.retention is not None and decision.retention > RETENTION_CUTOFF


def test_unaligned_noise_cannot_be_judged_and_keeps_flips_on() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (120, 16, 16, 3)).astype(np.uint8)
    decision = decide_flip(images, np.arange(120) % 3, ["a", "b", "c"])
    assert decision.flip and decision.retention is None and "too varied" in decision.reason


def flags(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    return given_settings(parser.parse_args(list(argv)))


def test_the_flip_switch_on_the_command_line() -> None:
    assert flags("--no-flip")["flip"] == "off"
    assert flags("--flip")["flip"] == "on"
    assert flags("--flip", "auto")["flip"] == "auto"
    assert "flip" not in flags()
    assert TrainConfig(data="d").flip == "auto"


def test_configs_saved_with_a_boolean_flip_still_load() -> None:
    assert TrainConfig.from_dict({"data": "d", "flip": False}).flip == "off"
    assert TrainConfig.from_dict({"data": "d", "flip": True}).flip == "on"
    with pytest.raises(ValueError, match="flip must be one of auto, on, off"):
        TrainConfig(data="d", flip="sometimes").validate()


def test_auto_flip_follows_the_data_and_a_hand_setting_wins(studio_home: Path) -> None:
    from core.data.dataset import load_dataset

    arrow_dataset()
    dataset = load_dataset("arrows")
    flip, reason = resolve_flip("auto", dataset)
    assert not flip and reason.startswith("flips off")
    assert (dataset.folder / "cache" / "flip-decision.json").exists()  # kept with the dataset
    assert resolve_flip("on", dataset) == (True, "flips on: set by hand")
    assert resolve_flip(False, dataset)[0] is False


def test_a_run_records_its_flip_and_leaves_flip_tta_off_when_it_does_not_flip(
        studio_home: Path, tmp_path: Path) -> None:
    from core.training.loop import fit
    from core.training.model_card import read_model_card

    arrow_dataset()
    config = TrainConfig(data="arrows", model="tiny-cnn", epochs=1, batch_size=16, device="cpu",
                         tta_flip=True)
    result = fit(config, tmp_path / "run")
    assert result["flip"] is False and result["tta_flip"] is False
    assert result["flip_reason"].startswith("flips off")
    card = read_model_card(tmp_path / "run")
    assert card["flip"] is False and card["tta_flip"] is False


def test_real_digits_get_flips_off_naming_a_digit() -> None:
    """scikit-learn's handwritten digits: a mirrored 3 or 7 is no digit (measured retention
    about 0.27; bench/RESULTS.md)."""
    from core.data.demo import digits_arrays

    images, labels = digits_arrays()["all"]
    decision = decide_flip(images, labels, [str(d) for d in range(10)])
    assert not decision.flip and decision.retention < 0.4
    assert decision.reason.startswith("flips off: mirrored images of `")


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Fashion-MNIST is not installed")
def test_real_fashion_mnist_gets_flips_on() -> None:
    """Garments are mirror-safe (measured retention about 0.64–0.71)."""
    from core.data.demo import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays()["train"]
    decision = decide_flip(images[:4000], labels[:4000], FASHION_CLASSES)
    assert decision.flip and decision.retention > 0.55
