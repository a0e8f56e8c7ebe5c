"""`--lr auto`: the LR range test first, within a time budget, and the run trains at its
suggestion (recorded in the result and the model card, kept by a resume)."""

from __future__ import annotations

import pytest
from shapes import shapes_config

import core.training.lr_find as finder
from core.cli import build_parser
from core.cli.train import config_from_args
from core.config import AUTO_LR, TrainConfig
from core.training.loop import fit
from core.training.model_card import read_model_card


def fake_range_test(config, **options) -> dict:
    return {"lrs": [1e-4, 1e-3], "losses": [2.0, 1.0], "suggestion": 0.0031234, "seconds": 0.5}


def test_lr_auto_is_a_flag_value_and_a_valid_setting() -> None:
    args = build_parser().parse_args(["train", "--data", "x", "--model", "tiny-cnn", "--lr",
                                      "auto"])
    config = config_from_args(args)
    assert config.lr == AUTO_LR
    config.validate()
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--lr", "fast"])


def test_a_tiny_rate_and_auto_on_several_gpus_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1e-06"):
        TrainConfig(data="x", lr=1e-9).validate()
    with pytest.raises(ValueError, match="auto learning rate"):
        TrainConfig(data="x", lr=AUTO_LR, gpus=2, batch_size=64).validate()


def test_rates_are_rounded_to_two_significant_digits() -> None:
    assert finder.two_digits(0.0031234) == 0.0031
    assert finder.two_digits(0.456) == 0.46


def test_an_auto_run_trains_at_the_suggestion_and_records_it(shapes_dataset, tmp_path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(finder, "lr_find", fake_range_test)
    result = fit(shapes_config(epochs=1, lr=AUTO_LR), tmp_path / "run")
    assert result["lr"] == 0.0031
    assert result["lr_auto"]["suggestion"] == pytest.approx(0.0031234)
    assert read_model_card(tmp_path / "run")["lr"] == 0.0031


def test_a_resumed_auto_run_keeps_the_rate_it_found(shapes_dataset, tmp_path,
                                                    monkeypatch) -> None:
    monkeypatch.setattr(finder, "lr_find", fake_range_test)
    fit(shapes_config(epochs=1, lr=AUTO_LR), tmp_path / "run")

    def no_second_test(config, **options):
        raise AssertionError("a resume must not run the range test again")

    monkeypatch.setattr(finder, "lr_find", no_second_test)
    result = fit(shapes_config(epochs=2, lr=AUTO_LR), tmp_path / "run", resume=True)
    assert result["lr"] == 0.0031 and result["lr_auto"]["resumed"]


def test_the_range_test_stops_at_its_time_budget(shapes_dataset) -> None:
    found = finder.lr_find(shapes_config(), budget_seconds=0.0)
    assert len(found["lrs"]) == 1 and found["suggestion"] is None


def test_an_auto_rate_without_a_suggestion_falls_back_to_the_default(shapes_dataset, tmp_path,
                                                                     monkeypatch) -> None:
    monkeypatch.setattr(finder, "AUTO_LR_SECONDS", 0.0)
    config = shapes_config(epochs=1, lr=AUTO_LR, optimizer="adamw")
    found = finder.resolve_auto_lr(config, tmp_path)
    assert config.lr == 0.002 and found["note"].startswith("the range test took too few steps")
