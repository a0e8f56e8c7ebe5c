"""How close the Train page's time estimate comes to the run it describes: for each recipe,
the estimate said before Start (core.training.estimate), then the run itself, from a cold
decode cache as a user's first run has."""

from __future__ import annotations

import time

from core.analysis.bench import drop_cache
from core.data.dataset import load_dataset
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.store import Store
from core.training.estimate import describe, estimate_config
from core.training.recipes import recipe_config


def estimate_vs_actual(data: str, recipes: list[str], overrides: dict | None = None) -> list[dict]:
    """One row per recipe: what the estimate said, what the run took, and their ratio."""
    dataset, store, rows = load_dataset(data), Store(), []
    for recipe in recipes:
        config = recipe_config(recipe, data, {"name": f"bench-estimate-{recipe}",
                                              **(overrides or {})})
        probe_started = time.perf_counter()
        estimate = estimate_config(config, dataset)
        probe_seconds = time.perf_counter() - probe_started
        if estimate is None:
            raise RuntimeError(f"{config.model}: its FLOPs cannot be counted, so no estimate.")
        drop_cache(config)
        started = time.perf_counter()
        result = execute_run(new_run(config, store, status="running"), store)
        wall = time.perf_counter() - started
        if result["status"] != "completed":
            raise RuntimeError(f"The {recipe} run {result['status']}: {result.get('error')}")
        rows.append({"recipe": recipe, "model": config.model, "epochs": config.epochs,
                     "said": describe(estimate), "estimate_s": estimate.seconds,
                     "probe_s": probe_seconds, "train_s": result["train_seconds"],
                     "run_s": wall, "run_over_estimate": wall / estimate.seconds,
                     "test_acc": result["test_acc"]})
    return rows
