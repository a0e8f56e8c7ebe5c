"""The training config's schema: every setting is a flag, every recipe takes every flag."""

from __future__ import annotations

import dataclasses

import pytest

from core.cli import build_parser
from core.cli.train import config_from_args
from core.config import DEVICES, Setting, TrainConfig, settings
from core.training.recipes import RECIPES

FLAGGED = {name: meta for name, meta in settings().items() if meta.cli}


def flag_and_value(name: str, meta: Setting) -> tuple[list[str], object]:
    """Command-line words setting `name` to a valid value other than its default, and the value
    the config should then hold."""
    flag = "--" + name.replace("_", "-")
    default = TrainConfig(data="x").to_dict()[name]
    if isinstance(default, bool):
        return [flag if not default else f"--no-{flag[2:]}"], not default
    if meta.choices:
        value = next(choice for choice in meta.choices if choice != default)
        return [flag, value], value
    if name in ("data", "model", "name", "init_from", "weights"):
        value = {"data": "shapes", "model": "small-cnn"}.get(name, "some-run")
        return [flag, value], value
    if name == "batch_size":
        return [flag, "auto"], 0
    value = meta.high if meta.low is None or meta.low == default else meta.low
    if name == "gpus":  # more than one needs torchrun and a batch split; 1 is its default
        value = 1
    number = int(value) if float(value).is_integer() and name not in ("lr",) else value
    return [flag, str(number)], number


def test_every_setting_but_the_recorded_ones_is_a_flag() -> None:
    assert set(settings()) - set(FLAGGED) == {"recipe", "extra"}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("name", sorted(FLAGGED))
def test_every_recipe_takes_every_flag(shapes_workspace, recipe: str, name: str) -> None:
    words, value = flag_and_value(name, FLAGGED[name])
    argv = ["train", "--data", "shapes", "--recipe", recipe, *words]
    config = config_from_args(build_parser().parse_args(argv))
    config.validate()
    assert config.recipe == recipe
    assert getattr(config, name) == pytest.approx(value) if isinstance(value, float) \
        else getattr(config, name) == value


def test_a_recipe_takes_a_run_name() -> None:
    """`recipe_config() got multiple values for argument 'name'`, once."""
    parser = build_parser()
    args = parser.parse_args(["train", "--data", "shapes", "--recipe", "cpu-quick", "--name", "X"])
    assert args.name == "X"


def test_flags_not_given_leave_the_recipe_s_choices(shapes_workspace) -> None:
    plain = config_from_args(build_parser().parse_args(
        ["train", "--data", "shapes", "--recipe", "speed-run"]))
    assert plain.optimizer == "sgd" and plain.label_smoothing == 0.2


def test_values_outside_the_schema_are_refused_with_the_setting_named() -> None:
    for name, meta in settings().items():
        if meta.high is not None and name != "gpus":
            config = dataclasses.replace(TrainConfig(data="x"), **{name: meta.high * 10 + 1})
            with pytest.raises(ValueError, match="(?i)" + meta.label.split(" (")[0]):
                config.validate()
    with pytest.raises(ValueError, match="device must be one of"):
        TrainConfig(data="x", device="tpu").validate()
    assert "tpu" not in DEVICES


def test_ema_decay_zero_on_the_command_line_turns_it_off(shapes_workspace) -> None:
    args = build_parser().parse_args(["train", "--data", "shapes", "--recipe", "speed-run-ema",
                                      "--ema-decay", "0"])
    assert config_from_args(args).ema_decay is None
