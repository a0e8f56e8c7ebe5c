"""A run's record: created (validated, a row in the store, a folder with its config),
listed, deleted. torch-free, so listing runs and queueing them stays quick."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from core.config import TrainConfig
from core.durable import write_json_atomic
from core.store import Store
from core.training.run_files import CONFIG
from core.workspace import runs_dir


def run_folder(run_id: str) -> Path:
    path = runs_dir() / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_run(config: TrainConfig, store: Store, *, status: str = "queued",
            group: str | None = None) -> str:
    """Validate the config, record the run, and make its folder; returns the run id."""
    config.validate()
    attach_spec(config)
    if "spec" not in config.extra and not config.model.lower().endswith(".json"):
        from models import describe_model

        describe_model(config.model)  # an unknown name fails here, before a run row exists
    run_id = store.create_run(config.to_dict(), name=config.name, status=status, group=group)
    write_json_atomic(run_folder(run_id) / CONFIG, config.to_dict())
    return run_id


def attach_spec(config: TrainConfig) -> None:
    """A model given as a JSON layer-spec file travels inside the config, so the run can be
    rebuilt after the file is gone."""
    if config.model.endswith(".json") and "spec" not in config.extra:
        path = Path(config.model)
        if not path.is_file():
            raise ValueError(f"The layer spec {config.model} does not exist.")
        try:
            config.extra["spec"] = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"The layer spec {config.model} is not valid JSON: {error}") from None


def rename_run(run_id: str, name: str, store: Store) -> None:
    """Give the run a new name: its row, its recorded config and the config file in its
    folder, so the card and a clone or re-run carry the name the person sees."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ValueError("Give the run a name of 1 to 128 characters.")
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"There is no run {run_id!r}.")
    config = run["config"] | {"name": name}
    store.update_run(run["run_id"], name=name, config=config)
    path = runs_dir() / run["run_id"] / CONFIG
    if path.is_file():
        write_json_atomic(path, json.loads(path.read_text()) | {"name": name})


def delete_run(run_id: str, store: Store) -> None:
    run = store.get_run(run_id)
    if run is None:
        raise ValueError(f"There is no run {run_id!r}.")
    if run["status"] in ("running", "queued"):
        raise ValueError("Stop the run before deleting it.")
    store.delete_run(run["run_id"])
    shutil.rmtree(runs_dir() / run["run_id"], ignore_errors=True)


def run_summary(run: dict) -> dict:
    """The compact JSON shape the CLI and pages list runs in."""
    summary = run.get("summary") or {}
    return {
        "run_id": run["run_id"], "name": run["name"], "status": run["status"],
        "model": run["model"], "data": run["data"], "group": run.get("group_name"),
        "epoch": run["epoch"], "epochs": run["config"].get("epochs"),
        "best_val_acc": run["best_val_acc"], "last_val_acc": run.get("last_val_acc"),
        "test_acc": run["test_acc"], "created_at": run["created_at"],
        "started_at": run["started_at"], "finished_at": run["finished_at"],
        "train_seconds": summary.get("train_seconds"), "error": run.get("error"),
    }
