"""`train` and `lr-find`: their flags are made from the training config's schema
(core.config), so every setting is a flag with the help, choices and range written there."""

from __future__ import annotations

import argparse

from core.cli.common import Result, command, fmt
from core.config import (
    AUTO_BATCH,
    AUTO_LR,
    GROUPS,
    SWITCH,
    Setting,
    TrainConfig,
    optional,
    settings,
    value_type,
)
from core.data.dataset import load_dataset
from core.runs.queue import resumable_run, submit
from core.runs.record import new_run
from core.store import Store
from core.training.hooks import ProgressBar
from core.training.recipes import RECIPES, recipe_config

TRAIN_KEYS = ("run_id", "name", "status", "model", "data", "device", "epochs", "best_val_acc",
              "best_epoch", "test_acc", "train_seconds", "train_images_per_s", "params", "flops",
              "image_size", "batch_size", "lr", "lr_auto", "compile_mode", "calibration",
              "unknown", "error", "per_class", "balanced_acc", "imbalance_ratio", "balance",
              "flip", "flip_reason", "tta_flip", "shift", "shift_reason", "resize",
              "resize_reason")


def batch_size_arg(text: str) -> int:
    """`--batch-size`: a number, or "auto" (AUTO_BATCH: the largest that fits the device)."""
    if text.strip().lower() == "auto":
        return AUTO_BATCH
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a batch size; give a whole number "
                                         "such as 64, or auto") from None
    if value < 1:
        raise argparse.ArgumentTypeError("the batch size must be at least 1 (or auto)")
    return value


def lr_arg(text: str) -> float:
    """`--lr`: a rate such as 0.003, or "auto" (AUTO_LR: the LR range test picks it first)."""
    if text.strip().lower() == "auto":
        return AUTO_LR
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a learning rate; give a number "
                                         "such as 0.003, or auto") from None


def pad_crop_arg(text: str) -> int | str:
    """`--pad-crop`: pixels such as 2, 0 for off, or auto (decided from the data)."""
    if text.strip().lower() == "auto":
        return OFF
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shift; give whole pixels such "
                                         "as 2, 0 for none, or auto") from None


def ema_decay_arg(text: str) -> float | str:
    """`--ema-decay`: a decay such as 0.999, or 0 for off."""
    value = float(text)
    return OFF if value == 0 else value


OFF = "off"  # a flag given to turn an optional setting off (its value becomes None)
PARSERS = {"batch_size": batch_size_arg, "lr": lr_arg, "ema_decay": ema_decay_arg,
           "pad_crop": pad_crop_arg}


def flag_type(name: str):
    """The argparse `type` of setting `name`."""
    return PARSERS.get(name) or value_type(name)


def flag_help(meta: Setting) -> str:
    if meta.low is None or meta.high is None:
        return meta.help
    return f"{meta.help} ({meta.low:g} to {meta.high:g})"


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig setting, grouped as the Train form groups them. A flag not
    given stays None, so only what is given overrides a recipe."""
    groups = {group: parser.add_argument_group(f"{group} settings") for group in GROUPS}
    for name, meta in settings().items():
        if not meta.cli:
            continue
        flag = "--" + name.replace("_", "-")
        kind = flag_type(name)
        options: dict = {"help": flag_help(meta), "default": None, "dest": name}
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif meta.choices == SWITCH:  # --flip (on), --flip auto|on|off, --no-flip (off)
            options.update(nargs="?", const="on", choices=SWITCH)
            groups[meta.group].add_argument("--no-" + flag[2:], dest=name, action="store_const",
                                            const="off", help=f"the same as {flag} off")
        else:
            options["type"] = kind
            if meta.choices:
                options["choices"] = meta.choices
        groups[meta.group].add_argument(flag, **options)
    parser.add_argument("--recipe", choices=sorted(RECIPES),
                        help="a preset of every setting, adapted to the dataset; other flags "
                             "override it")


def given_settings(args: argparse.Namespace) -> dict:
    """The TrainConfig settings given as flags (OFF for an optional setting: given as off, so
    None; a switch such as flip keeps "off" as its value)."""
    given = {name: getattr(args, name) for name in settings()
             if getattr(args, name, None) is not None}
    return {name: None if value == OFF and optional(name) else value
            for name, value in given.items()}


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    fields = given_settings(args)
    recipe = getattr(args, "recipe", None)
    if recipe:
        if "data" not in fields:
            raise ValueError("A recipe adapts to the dataset: give --data NAME too.")
        return recipe_config(recipe, fields.pop("data"), fields)
    return TrainConfig(**fields)


def train(args: argparse.Namespace) -> Result | None:
    # torch: imported by the commands that train, not by every one
    from core.runs import launch
    from core.training.ranks import joined, launched_by_torchrun

    if launched_by_torchrun() and not joined():
        return launch.train_as_rank(args, train)  # one rank of a torchrun job
    store = Store()
    if args.execute:  # a run the worker claimed, started here through torchrun
        return train_result(launch.execute(args.execute, store, may_launch=False))
    if args.resume:
        return train_resume(args, store)
    if not args.data or not (args.model or args.recipe):
        raise ValueError("train needs --data NAME and --model MODEL or --recipe RECIPE "
                         "(or --resume RUN).")
    config = config_from_args(args)
    load_dataset(config.data)  # fail fast, before a run row exists
    if args.queue:
        run_id = submit(config, store)
        return {"run_id": run_id, "status": "queued"}, f"queued run {run_id}", 0
    run_id = new_run(config, store, status="running")
    return train_result(launch.execute(run_id, store, [ProgressBar(config.epochs)]))


def train_resume(args: argparse.Namespace, store: Store) -> Result:
    from core.runs import launch  # torch

    run = resumable_run(args.resume, store)
    if args.epochs:
        store.update_run(run["run_id"], config=run["config"] | {"epochs": args.epochs})
    epochs = args.epochs or run["config"]["epochs"]
    return train_result(launch.execute(run["run_id"], store, [ProgressBar(epochs)]))


def train_result(result: dict) -> Result:
    payload = {key: result.get(key) for key in TRAIN_KEYS}
    text = (f"run {payload['name']} ({payload['run_id']}): {payload['status']}, "
            f"best val acc {fmt(payload['best_val_acc'])}, test acc {fmt(payload['test_acc'])}, "
            f"{fmt(payload['train_seconds'], '.1f')} s, "
            f"{fmt(payload['train_images_per_s'], '.0f')} images/s")
    if payload["lr_auto"]:
        found = payload["lr_auto"]
        text += (f"\nlearning rate {found['lr']:g}" + (" (found when the run started)"
                 if found.get("resumed") else f" from the LR range test ({found['steps']} steps, "
                 f"{found['seconds']:.1f} s)") + (f"; {found['note']}" if found.get("note")
                                                   else ""))
    if payload["error"]:
        text += f"\n{payload['error']}"
    return payload, text, 0 if payload["status"] in ("completed", "stopped") else 1


def lr_find(args: argparse.Namespace) -> Result:
    from core.training.lr_find import lr_find as range_test  # torch

    config = config_from_args(args)
    load_dataset(config.data)
    found = range_test(config)
    text = (f"suggested learning rate: {fmt(found['suggestion'], '.2e')} "
            f"(tried {len(found['lrs'])} steps from {found['lrs'][0]:.1e})")
    return found, text, 0


def register(commands) -> None:
    sub = command(commands, "train", train, "train a model (or resume a run)")
    add_setting_flags(sub)
    sub.add_argument("--resume", metavar="RUN", help="continue an interrupted or stopped run")
    sub.add_argument("--queue", action="store_true", help="queue for the background worker")
    sub.add_argument("--execute", metavar="RUN", help="train this recorded run now (the "
                                                     "worker starts multi-GPU runs so)")
    add_setting_flags(command(commands, "lr-find", lr_find,
                              "suggest a learning rate (LR range test)"))
