"""The store: runs, metrics and the queue, one fresh database per test, each test on SQLite
(WAL) and on PostgreSQL (conftest's `store_url`; the PostgreSQL cases need
CNN_STUDIO_TEST_PG, see there)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import Update, event, text

from core.__main__ import main as cli_main
from core.store import Store, StoreUnavailable, engine_url


@pytest.fixture
def store(store_url: str) -> Store:
    return Store(store_url)


def config(model: str = "tiny-cnn", data: str = "shapes", **extra) -> dict:
    return {"model": model, "data": data, "epochs": 3, **extra}


def test_created_run_reads_back_with_its_config(store: Store) -> None:
    run_id = store.create_run(config(lr=0.01), name="first", group="sweep")
    run = store.get_run(run_id)
    assert run["run_id"] == run_id
    assert run["name"] == "first"
    assert run["status"] == "queued"
    assert (run["model"], run["data"], run["group_name"]) == ("tiny-cnn", "shapes", "sweep")
    assert run["config"] == config(lr=0.01)
    assert run["summary"] == {}
    assert run["stop_requested"] == 0 and run["epoch"] == 0


def test_run_without_a_name_is_named_after_model_and_data(store: Store) -> None:
    run_id = store.create_run(config())
    assert store.get_run(run_id)["name"] == f"tiny-cnn-shapes-{run_id[-4:]}"


def test_update_run_stores_fields_and_json_summary(store: Store) -> None:
    run_id = store.create_run(config())
    store.update_run(run_id, status="completed", best_val_acc=0.75, test_acc=0.5,
                     summary={"status": "completed", "per_class": [1, 2]},
                     config=config(epochs=9))
    run = store.get_run(run_id)
    assert run["status"] == "completed"
    assert (run["best_val_acc"], run["test_acc"]) == (0.75, 0.5)
    assert run["summary"] == {"status": "completed", "per_class": [1, 2]}
    assert run["config"]["epochs"] == 9


def test_get_run_by_name_returns_the_newest_of_that_name(store: Store) -> None:
    older = store.create_run(config(), name="same")
    newer = store.create_run(config(), name="same")
    store.update_run(older, created_at=time.time() - 60)
    assert store.get_run("same")["run_id"] == newer
    assert store.get_run(older)["run_id"] == older
    assert store.get_run("no-such-run") is None


def test_list_runs_is_newest_first_and_filters_by_status(store: Store) -> None:
    first, second, third = (store.create_run(config(), name=f"r{i}") for i in range(3))
    for offset, run_id in ((30, first), (20, second), (10, third)):
        store.update_run(run_id, created_at=time.time() - offset)
    store.update_run(second, status="completed")
    assert [run["run_id"] for run in store.list_runs()] == [third, second, first]
    assert [run["run_id"] for run in store.list_runs(status=["completed"])] == [second]
    assert [run["run_id"] for run in store.list_runs(status=["queued"])] == [third, first]


def test_writing_the_same_metric_rows_twice_keeps_one_copy_with_the_new_value(store) -> None:
    run_id = store.create_run(config())
    store.add_metrics(run_id, [(1, 0.1, "loss", 2.0), (1, 0.1, "lr", 0.01), (2, 0.2, "loss", 1.5)])
    store.add_metrics(run_id, [(1, 0.1, "loss", 2.0), (1, 0.1, "lr", 0.01), (2, 0.2, "loss", 1.0)])
    rows = store.metrics(run_id)
    assert [(row["step"], row["name"]) for row in rows] == [(1, "loss"), (1, "lr"), (2, "loss")]
    assert rows[-1]["value"] == 1.0


def test_metrics_of_one_run_do_not_leak_into_another(store: Store) -> None:
    a, b = store.create_run(config()), store.create_run(config())
    store.add_metrics(a, [(1, 0.1, "loss", 2.0)])
    store.add_metrics(b, [(1, 0.1, "loss", 3.0)])
    assert [row["value"] for row in store.metrics(a)] == [2.0]
    assert [row["value"] for row in store.metrics(b)] == [3.0]


def test_metrics_from_min_step_leaves_out_older_rows(store: Store) -> None:
    run_id = store.create_run(config())
    store.add_metrics(run_id, [(step, step / 10, "loss", 1 / step) for step in range(1, 11)])
    store.add_metrics(run_id, [(10, 1.0, "epoch/val_acc", 0.5)])  # epoch rows share the step
    newer = store.metrics(run_id, min_step=8)
    assert sorted({row["step"] for row in newer}) == [8, 9, 10]  # inclusive: see the docstring
    assert {row["name"] for row in newer if row["step"] == 10} == {"loss", "epoch/val_acc"}
    assert [row["step"] for row in store.metrics(run_id, min_step=8, names=["loss"])] == [8, 9, 10]
    assert store.metrics(run_id, min_step=11) == []


def test_claim_takes_the_oldest_queued_run_first(store: Store) -> None:
    first, second = store.create_run(config(), name="a"), store.create_run(config(), name="b")
    store.update_run(first, created_at=time.time() - 10)
    store.update_run(second, created_at=time.time() - 20)  # queued earlier: goes first
    claimed = store.claim_next_run(worker_pid=123, max_running=2)
    assert claimed["run_id"] == second
    assert claimed["status"] == "running" and claimed["worker_pid"] == 123
    assert claimed["started_at"] is not None and claimed["heartbeat_at"] is not None
    assert store.claim_next_run(worker_pid=123, max_running=2)["run_id"] == first
    assert store.claim_next_run(worker_pid=123, max_running=2) is None  # nothing left


def test_claim_waits_while_max_running_runs_are_running(store: Store) -> None:
    for name in ("a", "b", "c"):
        store.create_run(config(), name=name)
    assert store.claim_next_run(worker_pid=1, max_running=1) is not None
    assert store.claim_next_run(worker_pid=1, max_running=1) is None
    assert len(store.list_runs(status=["queued"])) == 2
    assert store.claim_next_run(worker_pid=1, max_running=2) is not None
    assert store.claim_next_run(worker_pid=1, max_running=2) is None
    assert len(store.list_runs(status=["running"])) == 2


def test_stop_request_on_a_queued_run_stops_it_at_once(store: Store) -> None:
    run_id = store.create_run(config())
    store.request_stop(run_id)
    run = store.get_run(run_id)
    assert run["status"] == "stopped"
    assert run["finished_at"] is not None
    assert store.claim_next_run(worker_pid=1) is None


def test_stop_request_on_a_running_run_sets_the_flag_the_heartbeat_returns(store) -> None:
    run_id = store.create_run(config())
    store.claim_next_run(worker_pid=1)
    assert store.heartbeat(run_id) is False
    store.request_stop(run_id)
    assert store.get_run(run_id)["status"] == "running"  # the loop ends it, not the store
    assert store.heartbeat(run_id) is True


def test_only_running_runs_with_a_stale_heartbeat_are_marked_interrupted(store) -> None:
    stale, fresh, queued, done = (store.create_run(config(), name=n) for n in "sfqd")
    old = time.time() - 3600
    store.update_run(stale, status="running", heartbeat_at=old)
    store.update_run(fresh, status="running", heartbeat_at=time.time())
    store.update_run(done, status="completed", heartbeat_at=old)
    assert store.mark_stale_runs(max_age_s=60) == [stale]
    run = store.get_run(stale)
    assert run["status"] == "interrupted" and "Resume" in run["error"]
    assert store.get_run(fresh)["status"] == "running"
    assert store.get_run(queued)["status"] == "queued"
    assert store.get_run(done)["status"] == "completed"
    assert store.mark_stale_runs(max_age_s=60) == []


def test_delete_run_removes_its_metrics(store: Store) -> None:
    run_id = store.create_run(config())
    store.add_metrics(run_id, [(1, 0.1, "loss", 2.0)])
    store.delete_run(run_id)
    assert store.get_run(run_id) is None
    assert store.metrics(run_id) == []


def test_dataset_summaries_round_trip_and_replace_by_name(store: Store) -> None:
    store.record_dataset({"name": "d", "kept": 3})
    store.record_dataset({"name": "d", "kept": 5})
    [summary] = store.dataset_summaries()
    assert summary["kept"] == 5 and "created_at" in summary
    store.forget_dataset("d")
    assert store.dataset_summaries() == []


def test_long_names_and_exact_timestamps_read_back_on_both_databases(store: Store) -> None:
    long_name, spec_path = "n" * 300, "/data/" + "specs/" * 50 + "net.json"
    run_id = store.create_run(config(model=spec_path), name=long_name, group="g" * 200)
    moment = 1_767_225_600.123456  # microseconds survive: timestamps are double precision
    store.update_run(run_id, heartbeat_at=moment)
    run = store.get_run(long_name)
    assert (run["run_id"], run["model"], run["group_name"]) == (run_id, spec_path, "g" * 200)
    assert run["heartbeat_at"] == moment


def test_sqlite_store_is_in_wal_mode_in_the_workspace(studio_home) -> None:
    Store().create_run(config())
    path = studio_home / "studio.db"
    assert path.exists()
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        connection.close()


def test_concurrent_claims_never_share_a_run_or_overfill_the_slots(store: Store) -> None:
    for name in "abcdefgh":
        store.create_run(config(), name=name)
    claimed: list[str] = []

    def claim_all(pid: int) -> None:
        while (run := store.claim_next_run(worker_pid=pid, max_running=3)):
            claimed.append(run["run_id"])

    workers = [threading.Thread(target=claim_all, args=(pid,)) for pid in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert len(claimed) == len(set(claimed)) == 3
    assert len(store.list_runs(status=["running"])) == 3


ON_POSTGRESQL_ONLY = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


@ON_POSTGRESQL_ONLY  # on SQLite, BEGIN IMMEDIATE lets one writer in at a time
def test_a_claim_waits_for_a_claim_in_flight_on_postgresql(store: Store) -> None:
    """The first claim is held open after its UPDATE; the second, with one slot, must wait for
    it and then see the slot taken, not claim the next run beside it."""
    store.create_run(config(), name="a")
    store.create_run(config(), name="b")
    in_flight, release = threading.Event(), threading.Event()

    @event.listens_for(store.writer, "after_execute")
    def hold_first_claim(conn, clause, *_args) -> None:
        if threading.current_thread().name == "first" and isinstance(clause, Update):
            in_flight.set()
            release.wait(timeout=60)

    results: dict[str, dict | None] = {}

    def claim(name: str) -> None:
        results[name] = store.claim_next_run(worker_pid=1, max_running=1)

    first = threading.Thread(target=claim, args=("first",), name="first")
    second = threading.Thread(target=claim, args=("second",), name="second")
    try:
        first.start()
        assert in_flight.wait(timeout=60)
        second.start()
        wait_until_waiting_on_a_lock(store, second)
    finally:
        release.set()
        first.join(timeout=60)
        second.join(timeout=60)
        event.remove(store.writer, "after_execute", hold_first_claim)
    assert results["first"]["name"] == "a"
    assert results["second"] is None
    assert [run["name"] for run in store.list_runs(status=["queued"])] == ["b"]


def wait_until_waiting_on_a_lock(store: Store, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 60
    query = text("SELECT count(*) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND wait_event_type = 'Lock'")
    while True:
        assert thread.is_alive(), "the second claim finished while the first was in flight"
        with store.reader.connect() as conn:
            if conn.execute(query).scalar_one():
                return
        assert time.monotonic() < deadline, "the second claim never waited"
        time.sleep(0.01)


@ON_POSTGRESQL_ONLY
def test_a_connection_the_server_dropped_is_replaced_before_use(store: Store) -> None:
    run_id = store.create_run(config())
    with store.writer.connect() as conn:  # end every other session on this database
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    assert store.get_run(run_id)["run_id"] == run_id  # pre-ping noticed, reconnected


def test_postgresql_urls_select_psycopg_3() -> None:
    for url in ("postgresql://u:p@db.example:5432/studio", "postgres://u:p@db.example/studio",
                "postgresql+psycopg://u:p@db.example/studio"):
        assert engine_url(url).drivername == "postgresql+psycopg"
    assert engine_url("sqlite:////tmp/studio.db").drivername == "sqlite"


def test_unreachable_postgresql_says_what_to_check_and_hides_the_password() -> None:
    url = "postgresql://studio:s3cret-pw@127.0.0.1:1/studio"  # nothing listens on port 1
    with pytest.raises(StoreUnavailable) as raised:
        Store(url)
    message = str(raised.value)
    assert message.startswith("Cannot reach the store's database at postgresql://studio:***@")
    assert "pg_hba.conf" in message and "CNN_STUDIO_DB" in message
    assert "s3cret-pw" not in message
    assert isinstance(raised.value, ValueError)  # pages and the CLI show it as a sentence


def test_the_command_line_reports_an_unreachable_store_in_one_sentence(
        studio_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CNN_STUDIO_DB", "postgresql://studio:pw@127.0.0.1:1/studio")
    assert cli_main(["runs", "list"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: Cannot reach the store's database")
    assert "Traceback" not in captured.err and len(captured.err.splitlines()) == 1


def test_a_database_url_that_is_not_one_is_refused_with_the_form_to_use(monkeypatch) -> None:
    monkeypatch.setenv("CNN_STUDIO_DB", "localhost:5432/studio")
    with pytest.raises(StoreUnavailable, match="postgresql://USER:PASSWORD@HOST:5432/DATABASE"):
        Store()


def test_a_sqlite_file_that_cannot_be_opened_points_at_the_workspace(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'studio.db'}"
    with pytest.raises(StoreUnavailable, match="CNN_STUDIO_HOME"):
        Store(url)


def test_a_store_from_an_earlier_version_gains_the_new_columns(tmp_path) -> None:
    """An existing workspace's SQLite file, made before `worker_host` existed, keeps working."""
    import sqlite3

    from core.store import runs_table

    path = tmp_path / "old.db"
    columns = [column for column in runs_table.columns if column.name != "worker_host"]
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (" + ", ".join(
            f"{column.name} {column.type.compile()}" for column in columns) + ")")
    store = Store(f"sqlite:///{path}")
    run_id = store.create_run({"model": "tiny-cnn", "data": "shapes"})
    store.update_run(run_id, worker_host="here")
    assert store.get_run(run_id)["worker_host"] == "here"
