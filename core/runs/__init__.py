"""A run's life: recorded, queued, executed (here, through torchrun, or on Ray), carded.

    record        a run's row and folder: create, list, delete (torch-free)
    queue         queue, resume, stop, reconcile, start the worker (torch-free)
    worker        `python -m core worker`: claims queued runs and trains them
    imports       dataset imports as background jobs (`worker --imports`), torch-free
    launch        starts a recorded run: in this process or as a torchrun job
    execute       trains a recorded run here: heartbeat, metrics into the store, outcome
    ray_executor  queued runs spread over a Ray cluster
    card          a run's card: config, dataset, environment; re-run and clone configs
"""

from core.lazy import facade

__all__, __getattr__, __dir__ = facade(__name__, {
    "record": ("new_run", "run_folder", "delete_run", "run_summary"),
    "queue": ("submit", "resume", "stop", "reconcile", "ensure_worker", "worker_alive",
              "resumable_run", "RESUMABLE", "STALE_SECONDS"),
    "worker": ("work",),
    "imports": ("submit_zip", "submit_entries", "submit_demo", "cancel_import",
                "dismiss_import", "keep_imports_moving", "work_imports", "seconds_left"),
    "launch": ("execute",),
    "execute": ("execute_run",),
    "card": ("run_card", "rerun_config", "clone_config", "NOT_RECORDED"),
})
