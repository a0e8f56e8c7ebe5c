"""The random shift decided from the data: off for registered images (digits, garments), on
where objects sit anywhere, a number given by hand always wins, and a run records it."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from data_sets import arrow_dataset

from core.cli.train import add_setting_flags, given_settings
from core.config import TrainConfig
from core.data.demo import FASHION_CLASSES, FASHION_MNIST_DIR, digits_arrays, shapes_arrays
from core.data.mirror import FlipDecision, decide_flip
from core.data.shift import REGISTERED_CUTOFF, decide_shift, registration, shift_pixels

DIGITS = [str(d) for d in range(10)]


def test_the_shift_is_one_pixel_per_sixteen() -> None:
    assert [shift_pixels(size) for size in (8, 28, 32, 64, 224)] == [1, 2, 2, 4, 14]


def test_the_probe_decides_and_an_untested_set_keeps_the_shift() -> None:
    registered = FlipDecision(True, "", probe_acc=0.91)
    loose = FlipDecision(True, "", probe_acc=0.30)
    assert registration(registered, 10) == pytest.approx(0.9)
    assert decide_shift(registered, 10, 32).pad == 0
    assert decide_shift(loose, 10, 32).pad == 2
    assert decide_shift(FlipDecision(True, "too few"), 10, 32).pad == 2


def test_real_digits_are_registered_and_get_no_shift() -> None:
    images, labels = digits_arrays()["all"]
    decision = decide_shift(decide_flip(images, labels, DIGITS), 10, 8)
    assert decision.pad == 0 and decision.registration >= REGISTERED_CUTOFF
    assert decision.reason.startswith("shift off: the images are registered")


def test_the_same_digits_placed_anywhere_get_a_shift() -> None:
    images, labels = digits_arrays()["all"]
    rng = np.random.default_rng(0)
    canvas = np.zeros((len(images), 16, 16, *images.shape[3:]), np.uint8)
    for i, (dy, dx) in enumerate(rng.integers(0, 9, (len(images), 2))):
        canvas[i, dy:dy + 8, dx:dx + 8] = images[i]
    decision = decide_shift(decide_flip(canvas, labels, DIGITS), 10, 16)
    assert decision.pad == 1 and decision.registration < REGISTERED_CUTOFF
    assert decision.reason.startswith("shift 1 px: objects sit at different places")


def test_shapes_drawn_anywhere_get_a_shift() -> None:
    images, labels = shapes_arrays(per_class=100)["all"]
    decision = decide_shift(decide_flip(images, labels, ["circle", "square", "triangle"]), 3, 32)
    assert decision.pad == 2


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Fashion-MNIST is not installed")
def test_real_fashion_mnist_is_registered() -> None:
    from core.data.demo import fashion_mnist_arrays

    images, labels = fashion_mnist_arrays()["train"]
    decision = decide_shift(decide_flip(images[:4000], labels[:4000], FASHION_CLASSES), 10, 28)
    assert decision.pad == 0


def flags(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    return given_settings(parser.parse_args(list(argv)))


def test_the_shift_on_the_command_line() -> None:
    assert flags("--pad-crop", "auto")["pad_crop"] is None
    assert flags("--pad-crop", "0")["pad_crop"] == 0
    assert flags("--pad-crop", "3")["pad_crop"] == 3
    assert TrainConfig(data="d").pad_crop is None  # auto by default
    with pytest.raises(SystemExit):
        flags("--pad-crop", "lots")


def test_a_run_records_its_shift_and_a_hand_setting_wins(studio_home: Path,
                                                         tmp_path: Path) -> None:
    from core.training.loop import fit
    from core.training.model_card import read_model_card

    arrow_dataset()
    common = {"data": "arrows", "model": "tiny-cnn", "epochs": 1, "batch_size": 16,
              "device": "cpu"}
    result = fit(TrainConfig(**common), tmp_path / "auto")
    assert isinstance(result["shift"], int) and result["shift_reason"].startswith("shift")
    assert read_model_card(tmp_path / "auto")["shift"] == result["shift"]
    by_hand = fit(TrainConfig(**common, pad_crop=3), tmp_path / "hand")
    assert (by_hand["shift"], by_hand["shift_reason"]) == (3, "shift 3 px: set by hand")
