"""Progress inside an epoch: the command line's step counter with its ETA, and the row the live
page counts steps with."""

from __future__ import annotations

import io

from shapes import shapes_config

from core.runs.execute import STEPS_PER_EPOCH, StoreRecorder, execute_run
from core.runs.record import new_run
from core.store import Store
from core.training.hooks import ProgressBar, clock, eta_seconds


class Pipe(io.StringIO):
    """A stderr that is not a terminal (a log file, CI)."""

    def isatty(self) -> bool:
        return False


def test_progress_off_a_terminal_prints_steps_and_an_eta_inside_the_first_epoch() -> None:
    stream = Pipe()
    bar = ProgressBar(total_epochs=4, stream=stream)
    bar.LINE_SECONDS = 0.0
    bar.on_start({"steps_per_epoch": 100, "resumed_from_epoch": 0})
    bar.on_step(25, 0.25, {"loss": 1.5, "images_per_s": 1000.0})
    line = stream.getvalue().splitlines()[0]
    assert line.startswith("step 25/400 epoch 0.25/4 loss 1.5000 1,000 img/s ETA ")


def test_a_resumed_run_counts_from_its_checkpoint() -> None:
    stream = Pipe()
    bar = ProgressBar(total_epochs=4, stream=stream)
    bar.LINE_SECONDS = 0.0
    bar.on_start({"steps_per_epoch": 10, "resumed_from_epoch": 2})
    bar.on_step(25, 2.5, {"loss": 1.0, "images_per_s": 10.0})
    assert stream.getvalue().startswith("step 25/40 ")


def test_eta_is_the_rate_so_far_applied_to_what_is_left() -> None:
    assert eta_seconds(done=25, left=75, seconds=10.0) == 30.0
    assert eta_seconds(done=0, left=75, seconds=10.0) is None
    assert (clock(65), clock(3725)) == ("1:05", "1:02:05")


def test_a_run_records_its_steps_per_epoch_before_its_first_step(shapes_dataset) -> None:
    store = Store()
    run_id = new_run(shapes_config(epochs=1), store, status="running")
    StoreRecorder(store, run_id).on_start({"steps_per_epoch": 3, "start_step": 0,
                                           "resumed_from_epoch": 0})
    rows = store.metrics(run_id, names=[STEPS_PER_EPOCH])
    assert [(row["step"], row["value"]) for row in rows] == [(0, 3.0)]


def test_a_trained_run_has_its_steps_per_epoch_row(shapes_dataset) -> None:
    store = Store()
    run_id = new_run(shapes_config(epochs=1), store, status="running")
    execute_run(run_id, store)
    rows = store.metrics(run_id, names=[STEPS_PER_EPOCH])
    assert [row["value"] for row in rows] == [3.0]  # 240 training images, batch 64, drop_last
