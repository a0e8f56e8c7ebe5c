"""A run's card: everything needed to understand and reproduce it, and the configs to re-run
it exactly or to clone it as the start of a new one."""

from __future__ import annotations

import dataclasses
import json

from core.config import TrainConfig
from core.data.dataset import DatasetError, load_dataset
from core.store import Store
from core.training.run_files import CALIBRATION, MODEL_CARD
from core.workspace import runs_dir

NOT_RECORDED = "not recorded"


def run_card(run_ref: str, store: Store | None = None) -> dict:
    """The run's config, dataset (name, content hash at training time and now, split counts,
    split seed), training seed, environment, timing and results."""
    store = store or Store()
    run = store.get_run(run_ref)
    if run is None:
        raise ValueError(f"There is no run {run_ref!r}.")
    summary = run.get("summary") or {}
    config = run["config"]
    return {
        "run_id": run["run_id"], "name": run["name"], "status": run["status"],
        "group": run.get("group_name"), "error": run.get("error"),
        "created_at": run["created_at"], "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "config": config, "seed": config.get("seed"), "recipe": recipe_text(config),
        "dataset": dataset_card(run),
        "environment": summary.get("environment") or NOT_RECORDED,
        "results": {key: summary.get(key, run.get(key)) for key in (
            "best_val_acc", "best_epoch", "test_acc", "test_loss", "epochs", "train_seconds",
            "train_images_per_s", "params", "flops", "image_size", "device",
            "balanced_acc", "imbalance_ratio", "balance", "flip", "flip_reason", "resize")},
        # how far to trust the answers (training.after_fit): None for runs from before
        "calibration": summary.get("calibration"),
        "unknown": summary.get("unknown"),
    }


def recipe_text(config: dict) -> str | None:
    """"cpu-quick", or "cpu-quick (modified: epochs, lr)" when the run changed what the recipe
    set (core.training.recipes.mark_recipe_changes); None for a run without a recipe."""
    recipe = config.get("recipe")
    if not recipe:
        return None
    changed = (config.get("extra") or {}).get("recipe_changed") or []
    return f"{recipe} (modified: {', '.join(changed)})" if changed else recipe


def dataset_card(run: dict) -> dict:
    """The dataset as the run saw it (model.json, written at run start) and as it is now."""
    card_path = runs_dir() / run["run_id"] / MODEL_CARD
    model_card = json.loads(card_path.read_text()) if card_path.exists() else {}
    trained_hash = model_card.get("content_hash") or NOT_RECORDED
    info = {"name": run["data"], "content_hash": trained_hash,
            "image_size": model_card.get("image_size") or NOT_RECORDED,
            "classes": model_card.get("classes") or NOT_RECORDED,
            "splits": model_card.get("splits") or NOT_RECORDED,
            "split_seed": model_card.get("split_seed", NOT_RECORDED),
            "current_hash": None, "changed": None}
    try:
        dataset = load_dataset(run["data"])
    except (DatasetError, ValueError):
        info["current_hash"] = "dataset deleted"
        return info
    info.update(current_hash=dataset.content_hash,
                changed=trained_hash != NOT_RECORDED and trained_hash != dataset.content_hash)
    if info["splits"] == NOT_RECORDED and not info["changed"]:
        # runs from before the card kept its split: today's split, same images, is the best guess
        info.update(splits=dataset.split_counts(), split_seed=dataset.seed)
    return info


def rerun_config(run: dict, name: str | None = None) -> TrainConfig:
    """The run's config unchanged (seed, data, every setting), under a new name."""
    config = TrainConfig.from_dict(json.loads(json.dumps(run["config"])))  # a deep copy
    return dataclasses.replace(config, name=name or f"{run['name']}-rerun")


def clone_config(run: dict) -> TrainConfig:
    """The run's config as the starting point of a new run: every setting kept, no name (the
    form gives one); edit freely before submitting."""
    config = TrainConfig.from_dict(json.loads(json.dumps(run["config"])))
    return dataclasses.replace(config, name=None)


def calibration_record(run_id: str) -> dict | None:
    """The run's calibration.json (temperature, ECE and reliability bins before and after,
    the unknown-input detector; core.training.after_fit), or None before it is written."""
    path = runs_dir() / run_id / CALIBRATION
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
