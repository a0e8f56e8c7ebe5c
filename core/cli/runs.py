"""`runs …` and `worker`: list, show, cancel and delete runs; train the queued ones."""

from __future__ import annotations

import argparse

from core.cli.common import Result, command, fmt
from core.runs.queue import reconcile, stop
from core.runs.record import delete_run, run_summary
from core.store import Store


def runs_list(args: argparse.Namespace) -> Result:
    store = Store()
    reconcile(store)
    runs = [run_summary(run) for run in store.list_runs()]
    text = "\n".join(f"{r['run_id']}  {r['name'][:32]:32} {r['status']:11} {r['model'][:16]:16} "
                     f"{r['data'][:16]:16} val {fmt(r['best_val_acc'])} test {fmt(r['test_acc'])}"
                     for r in runs) or "no runs yet"
    return {"runs": runs}, text, 0


def runs_show(args: argparse.Namespace) -> Result:
    store = Store()
    reconcile(store)
    run = store.get_run(args.run)
    if run is None:
        raise ValueError(f"There is no run {args.run!r}; see `python -m core runs list`.")
    payload = run_summary(run) | {"config": run["config"], "result": run["summary"]}
    text = "\n".join(f"{key}: {value}" for key, value in payload.items() if key != "result")
    return payload, text, 0


def runs_cancel(args: argparse.Namespace) -> Result:
    run_id = stop(args.run)
    return {"run_id": run_id, "stop_requested": True}, f"asked run {run_id} to stop", 0


def runs_delete(args: argparse.Namespace) -> Result:
    delete_run(args.run, Store())
    return {"deleted": args.run}, f"deleted run {args.run}", 0


def job_runners() -> dict:
    """The import worker's runners for the jobs that are not imports (core.runs never imports
    core.analysis); each loads torch only when a job of its kind comes."""
    from core.analysis.label_jobs import KIND

    def label_issues_job(job: dict, progress) -> dict:
        from core.analysis.label_issues import run_label_job  # torch, cleanlab

        return run_label_job(job, progress)

    return {KIND: label_issues_job}


def worker(args: argparse.Namespace) -> Result:
    if args.imports:
        from core.runs.imports import work_imports

        count = work_imports(idle_exit_s=args.idle_exit, runners=job_runners())
        if count < 0:
            return {"started": False}, "another import worker already serves this workspace", 0
        return {"imported": count}, f"import worker ran {count} imports", 0
    from core.runs.worker import work  # torch: only the worker trains

    count = work(idle_exit_s=args.idle_exit)
    if count < 0:
        return {"started": False}, "another worker already serves this workspace", 0
    return {"trained": count}, f"worker trained {count} runs", 0


def register(commands) -> None:
    runs = commands.add_parser("runs", help="list, show, cancel, delete runs").add_subparsers()
    command(runs, "list", runs_list, "list runs")
    for name, handler in (("show", runs_show), ("cancel", runs_cancel), ("delete", runs_delete)):
        command(runs, name, handler, f"{name} a run").add_argument("run")
    sub = command(commands, "worker", worker, "train queued runs in the background (with "
                  "CNN_STUDIO_EXECUTOR=ray: dispatch them over a Ray cluster)")
    sub.add_argument("--idle-exit", type=float, default=120.0, help="seconds idle before exiting")
    sub.add_argument("--imports", action="store_true",
                     help="run queued dataset imports and label-error searches instead (the "
                          "Datasets and Error analysis pages queue them)")
