"""The store under load: writer processes (queue runs, claim them, stream metric batches,
heartbeat, finish) and reader processes (list runs, poll metrics, as the pages do) against
one database at once, SQLite and PostgreSQL (conftest's `store_url`). Zero errors may reach
a caller: no `database is locked`, no deadlock, nothing.

Bounded for CI: SOAK_SECONDS (default 10) of load per database; SOAK_SECONDS=60 for the long
soak.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import time
import traceback
from collections import Counter

from sqlalchemy import text

SECONDS = float(os.environ.get("SOAK_SECONDS", "10"))
WRITERS, READERS = 3, 2


def ready_then_go(url: str, ready, go) -> tuple[object, float]:
    """Open the store (imports take a while under spawn), then start with everyone else."""
    from core.store import Store

    store = Store(url)
    ready.put(os.getpid())
    go.wait()
    return store, time.time() + SECONDS


def writer(url: str, seed: int, ready, go, results) -> None:
    """One worker's life, over and over: queue a run, claim one, stream metrics, finish it."""
    store, until = ready_then_go(url, ready, go)
    rng, ops, errors, claimed = random.Random(seed), Counter(), [], []
    pid = os.getpid()
    while time.time() < until:
        try:
            config = {"model": "tiny-cnn", "data": "shapes", "epochs": 3, "seed": seed}
            store.create_run(config, name=f"soak-{seed}-{ops['create']}")
            ops["create"] += 1
            run = store.claim_next_run(pid, max_running=WRITERS * 4)
            ops["claim"] += 1
            if run is None:
                continue
            claimed.append(run["run_id"])
            for step in range(0, 200, 20):
                rows = [(step + i, step / 200, name, rng.random())
                        for i in range(20) for name in ("loss", "lr", "images_per_s")]
                store.add_metrics(run["run_id"], rows)
                ops["metric batch"] += 1
                if rng.random() < 0.2:  # a resumed run writes the same steps again
                    store.add_metrics(run["run_id"], rows)
                    ops["metric batch"] += 1
                store.heartbeat(run["run_id"])
                ops["heartbeat"] += 1
            store.update_run(run["run_id"], epoch=3, best_val_acc=rng.random())
            store.update_run(run["run_id"], status=rng.choice(["completed", "stopped"]),
                             finished_at=time.time(), summary={"soak": True})
            ops["update"] += 2
            if rng.random() < 0.1:
                store.mark_stale_runs(max_age_s=3600)  # what every start-up and `runs list` do
                ops["reconcile"] += 1
        except Exception:  # noqa: BLE001 - counting every failure is the point
            errors.append(traceback.format_exc(limit=3))
    results.put(("writer", dict(ops), errors, claimed))


def reader(url: str, seed: int, ready, go, results) -> None:
    """A dashboard page polling: the runs table, one run, its new metric rows."""
    store, until = ready_then_go(url, ready, go)
    rng, ops, errors = random.Random(seed), Counter(), []
    last_step: dict[str, int] = {}
    while time.time() < until:
        try:
            runs = store.list_runs()
            ops["list runs"] += 1
            if runs:
                run = rng.choice(runs[:20])
                store.get_run(run["run_id"])
                rows = store.metrics(run["run_id"], min_step=last_step.get(run["run_id"], 0))
                if rows:
                    last_step[run["run_id"]] = rows[-1]["step"]
                ops["read metrics"] += 2
            store.list_runs(status=["running", "queued"])
            ops["list runs"] += 1
        except Exception:  # noqa: BLE001
            errors.append(traceback.format_exc(limit=3))
    results.put(("reader", dict(ops), errors, []))


def test_store_soak_with_writers_and_readers_reaches_no_lock_errors(store_url: str) -> None:
    url = store_url
    from core.store import Store

    store = Store(url)  # create the tables once, before the crowd arrives
    context = multiprocessing.get_context("spawn")
    results, ready, go = context.Queue(), context.Queue(), context.Event()
    processes = [context.Process(target=writer, args=(url, seed, ready, go, results))
                 for seed in range(WRITERS)]
    processes += [context.Process(target=reader, args=(url, 100 + seed, ready, go, results))
                  for seed in range(READERS)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=120)
    go.set()
    reports = [results.get(timeout=SECONDS + 120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0

    ops: Counter = Counter()
    errors, claimed = [], []
    for _, counts, failures, runs in reports:
        ops.update(counts)
        errors += failures
        claimed += runs
    integrity, running = consistency(store)
    locked = sum("database is locked" in error or "deadlock" in error for error in errors)
    print(f"\nsoak on {store.writer.dialect.name}: {WRITERS} writers + {READERS} readers for "
          f"{SECONDS:g} s: {sum(ops.values())} operations "
          f"({', '.join(f'{k} {v}' for k, v in sorted(ops.items()))}); {len(errors)} errors "
          f"({locked} 'database is locked' or deadlock); integrity {integrity}")
    assert errors == [], errors[:3]
    assert len(claimed) == len(set(claimed))  # no queued run was claimed by two workers
    assert integrity == "ok" and running == 0  # (metric keys cannot repeat: primary key)
    assert ops["metric batch"] > 0 and ops["list runs"] > 0


def consistency(store) -> tuple[str, int]:
    """(integrity check, runs left running) after the soak."""
    with store.reader.connect() as conn:
        integrity = (conn.execute(text("PRAGMA integrity_check")).scalar_one()
                     if conn.dialect.name == "sqlite" else "ok")  # PostgreSQL checks as it goes
        running = conn.execute(text("SELECT COUNT(*) FROM runs WHERE status = 'running'")
                               ).scalar_one()
    return integrity, running
