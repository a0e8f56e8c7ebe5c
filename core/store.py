"""The store: datasets, runs and metrics in a database named by a URL (SQLAlchemy Core).

By default one SQLite file in the workspace, in WAL mode with a busy timeout, so
worker processes write while dashboard pages read. Writes open with
`BEGIN IMMEDIATE` so two writers queue on the lock instead of failing halfway
through a transaction. Set `CNN_STUDIO_DB` to a PostgreSQL URL to share one store
between machines; nothing above this module changes.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine

from core.workspace import db_url

RUN_STATUSES = ("queued", "running", "completed", "stopped", "failed", "interrupted")
FINISHED = ("completed", "stopped", "failed", "interrupted")

metadata = MetaData()
datasets_table = Table(
    "datasets", metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("summary", Text, nullable=False),  # JSON: Dataset.summary() without the item list
)
runs_table = Table(
    "runs", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("model", String(200), nullable=False),
    Column("data", String(64), nullable=False),
    Column("group_name", String(128)),
    Column("config", Text, nullable=False),  # JSON TrainConfig
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
    Column("worker_pid", Integer),
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("epoch", Integer, nullable=False, default=0),
    Column("best_val_acc", Float),
    Column("last_val_acc", Float),
    Column("test_acc", Float),
    Column("summary", Text),  # JSON: the result of core.train.fit
)
metrics_table = Table(
    "metrics", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("epoch", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("time", Float, nullable=False),
)

_engines: dict[str, tuple[Engine, Engine]] = {}


def engines(url: str) -> tuple[Engine, Engine]:
    """(writer, reader) engines for a URL, made once per process."""
    if url not in _engines:
        writer = create_engine(url, future=True)
        reader = create_engine(url, future=True)
        if writer.dialect.name == "sqlite":
            configure_sqlite(writer, immediate=True)
            configure_sqlite(reader, immediate=False)
        metadata.create_all(writer)
        _engines[url] = (writer, reader)
    return _engines[url]


def configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or db_url()
        self.writer, self.reader = engines(self.url)

    # Datasets -------------------------------------------------------------------------------

    def record_dataset(self, summary: dict) -> None:
        row = {"name": summary["name"], "created_at": time.time(), "summary": json.dumps(summary)}
        with self.writer.begin() as conn:
            conn.execute(delete(datasets_table).where(datasets_table.c.name == summary["name"]))
            conn.execute(insert(datasets_table).values(**row))

    def dataset_summaries(self) -> list[dict]:
        with self.reader.begin() as conn:
            rows = conn.execute(select(datasets_table).order_by(datasets_table.c.name)).all()
        return [json.loads(row.summary) | {"created_at": row.created_at} for row in rows]

    def forget_dataset(self, name: str) -> None:
        with self.writer.begin() as conn:
            conn.execute(delete(datasets_table).where(datasets_table.c.name == name))

    # Runs -----------------------------------------------------------------------------------

    def create_run(self, config: dict, *, name: str | None = None, status: str = "queued",
                   group: str | None = None) -> str:
        run_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)
        row = {
            "run_id": run_id, "name": name or f"{config['model']}-{config['data']}-{run_id[-4:]}",
            "status": status, "model": str(config["model"]), "data": config["data"],
            "group_name": group, "config": json.dumps(config), "created_at": time.time(),
            "stop_requested": 0, "epoch": 0,
        }
        with self.writer.begin() as conn:
            conn.execute(insert(runs_table).values(**row))
        return run_id

    def get_run(self, ref: str) -> dict | None:
        """A run by id, or by name (the newest with that name)."""
        query = (select(runs_table)
                 .where(or_(runs_table.c.run_id == ref, runs_table.c.name == ref))
                 .order_by((runs_table.c.run_id == ref).desc(), runs_table.c.created_at.desc()))
        with self.reader.begin() as conn:
            row = conn.execute(query).first()
        return run_row(row) if row else None

    def list_runs(self, status: Iterable[str] | None = None) -> list[dict]:
        query = select(runs_table).order_by(runs_table.c.created_at.desc())
        if status is not None:
            query = query.where(runs_table.c.status.in_(list(status)))
        with self.reader.begin() as conn:
            return [run_row(row) for row in conn.execute(query).all()]

    def update_run(self, run_id: str, **fields) -> None:
        for key in ("config", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        with self.writer.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(**fields))

    def claim_next_run(self, worker_pid: int, max_running: int = 1) -> dict | None:
        """Move the oldest queued run to running for this worker, if a slot is free."""
        with self.writer.begin() as conn:
            running = conn.execute(select(func.count()).select_from(runs_table)
                                   .where(runs_table.c.status == "running")).scalar_one()
            if running >= max_running:
                return None
            row = conn.execute(select(runs_table.c.run_id).where(runs_table.c.status == "queued")
                               .order_by(runs_table.c.created_at).limit(1)).first()
            if row is None:
                return None
            now = time.time()
            conn.execute(update(runs_table).where(runs_table.c.run_id == row.run_id).values(
                status="running", worker_pid=worker_pid, started_at=now, heartbeat_at=now,
                finished_at=None, error=None))
        return self.get_run(row.run_id)

    def heartbeat(self, run_id: str) -> bool:
        """Record that the run is alive; return True when a stop was requested."""
        with self.writer.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                         .values(heartbeat_at=time.time()))
            flag = conn.execute(select(runs_table.c.stop_requested)
                                .where(runs_table.c.run_id == run_id)).scalar_one_or_none()
        return bool(flag)

    def request_stop(self, run_id: str) -> None:
        """Ask a running run to stop; a queued one is stopped at once."""
        with self.writer.begin() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                         .values(stop_requested=1))
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                         .where(runs_table.c.status == "queued")
                         .values(status="stopped", finished_at=time.time()))

    def mark_stale_runs(self, max_age_s: float, alive: set[int] | None = None) -> list[str]:
        """Running rows whose heartbeat is older than max_age_s (or whose worker pid is not in
        `alive`, when given) become `interrupted`; returns their ids."""
        now = time.time()
        with self.writer.begin() as conn:
            rows = conn.execute(select(runs_table.c.run_id, runs_table.c.heartbeat_at,
                                       runs_table.c.worker_pid)
                                .where(runs_table.c.status == "running")).all()
            stale = [row.run_id for row in rows
                     if (row.heartbeat_at or 0) < now - max_age_s
                     or (alive is not None and row.worker_pid not in alive)]
            if stale:
                conn.execute(update(runs_table).where(runs_table.c.run_id.in_(stale)).values(
                    status="interrupted", finished_at=now,
                    error="The worker stopped sending heartbeats (killed or crashed). "
                          "Resume to continue from the last checkpoint."))
        return stale

    def delete_run(self, run_id: str) -> None:
        with self.writer.begin() as conn:
            conn.execute(delete(metrics_table).where(metrics_table.c.run_id == run_id))
            conn.execute(delete(runs_table).where(runs_table.c.run_id == run_id))

    # Metrics --------------------------------------------------------------------------------

    def add_metrics(self, run_id: str, rows: Iterable[tuple[int, float, str, float]]) -> None:
        """Write (step, epoch, name, value) rows; a row already there is replaced, so a resumed
        run that repeats a step does not duplicate it."""
        now = time.time()
        values = [{"run_id": run_id, "step": int(step), "epoch": float(epoch), "name": name,
                   "value": float(value), "time": now} for step, epoch, name, value in rows]
        if not values:
            return
        with self.writer.begin() as conn:
            conn.execute(upsert(self.writer), values)

    def metrics(self, run_id: str, min_step: int = 0,
                names: Iterable[str] | None = None) -> list[dict]:
        """Metric rows of a run with step ≥ min_step, oldest first (pages poll with the last
        step they drew)."""
        query = (select(metrics_table).where(metrics_table.c.run_id == run_id)
                 .where(metrics_table.c.step >= min_step)
                 .order_by(metrics_table.c.step, metrics_table.c.name))
        if names is not None:
            query = query.where(metrics_table.c.name.in_(list(names)))
        with self.reader.begin() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]


def upsert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = dialect_insert(metrics_table)
    return statement.on_conflict_do_update(
        index_elements=["run_id", "step", "name"],
        set_={"value": statement.excluded.value, "epoch": statement.excluded.epoch,
              "time": statement.excluded.time})


def run_row(row) -> dict:
    data = dict(row._mapping)
    data["config"] = json.loads(data["config"])
    data["summary"] = json.loads(data["summary"]) if data.get("summary") else {}
    return data
