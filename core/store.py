"""The store: datasets, runs and metrics in a database named by a URL (SQLAlchemy Core).

By default one SQLite file in the workspace, in WAL mode with a busy timeout, so
worker processes write while dashboard pages read. Writes open with
`BEGIN IMMEDIATE` so two writers queue on the lock instead of failing halfway
through a transaction. Set `CNN_STUDIO_DB` to a PostgreSQL URL
(`postgresql://user:password@host:5432/database`, driven by psycopg 3) to share one
store between machines: pooled connections checked before use, the queue claimed
under a transaction-scoped advisory lock; nothing above this module changes.
A database that cannot be reached raises `StoreUnavailable`, whose message says
what to check.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

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
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

from core.workspace import db_url

FINISHED = ("completed", "stopped", "failed", "interrupted")
ACTIVE = ("queued", "running")

# Keys of PostgreSQL advisory locks (per database): claims of the queue, and creating tables.
CLAIM_LOCK, SCHEMA_LOCK = 0x636E6E01, 0x636E6E02
# SQLSTATE classes that mean "the connection or the server is the problem": connection
# exception, invalid authorization, no such database, operator intervention (shutdown).
UNREACHABLE_SQLSTATES = ("08", "28", "3D", "57")
POSTGRES_ENGINE_OPTIONS = {
    "pool_pre_ping": True,  # a connection the server dropped is replaced, not handed out
    "pool_size": 5,
    "max_overflow": 10,
    "pool_recycle": 1800,
    "connect_args": {"connect_timeout": 10, "application_name": "cnn-studio"},
}

metadata = MetaData()
datasets_table = Table(
    "datasets", metadata,
    Column("name", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),  # Unix seconds (double precision)
    Column("summary", Text, nullable=False),  # JSON: Dataset.summary() without the item list
)
runs_table = Table(
    "runs", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("name", Text, nullable=False),  # Text: no length limit on PostgreSQL either
    Column("status", String(16), nullable=False, index=True),  # queued, running or FINISHED
    Column("model", Text, nullable=False),
    Column("data", String(64), nullable=False),
    Column("group_name", Text),
    Column("config", Text, nullable=False),  # JSON TrainConfig
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),
    Column("worker_pid", Integer),
    Column("worker_host", Text),  # with worker_pid: a reader on this host sees a dead worker
    Column("stop_requested", Integer, nullable=False, default=0),
    Column("error", Text),
    Column("epoch", Integer, nullable=False, default=0),
    Column("best_val_acc", Float),
    Column("last_val_acc", Float),
    Column("test_acc", Float),
    Column("summary", Text),  # JSON: the result of core.training.loop.fit
)
imports_table = Table(  # dataset imports the background worker runs (core.runs.imports)
    "imports", metadata,
    Column("job_id", String(32), primary_key=True),
    Column("name", String(64), nullable=False),  # the dataset it makes
    Column("kind", String(16), nullable=False),  # zip, entries, demo; label-issues
    Column("request", Text, nullable=False),  # JSON: the staged file, split, demo kind
    Column("status", String(16), nullable=False, index=True),  # IMPORT_STATUSES
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("worker_pid", Integer),
    Column("worker_host", Text),
    Column("done", Integer, nullable=False, default=0),  # files looked at so far
    Column("total", Integer, nullable=False, default=0),
    Column("cancel_requested", Integer, nullable=False, default=0),
    Column("dismissed", Integer, nullable=False, default=0),  # its notice was closed
    Column("error", Text),
    Column("summary", Text),  # JSON: the new dataset's summary
)
metrics_table = Table(
    "metrics", metadata,
    Column("run_id", String(32), primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("name", Text, primary_key=True),
    Column("epoch", Float, nullable=False),
    Column("value", Float, nullable=False),
    Column("time", Float, nullable=False),
)


class StoreUnavailable(ConnectionError, ValueError):
    """The database cannot be reached or used; the message says what to check. A ValueError
    too, so the command line and the pages show it as a sentence, not a traceback."""


_engines: dict[str, tuple[Engine, Engine]] = {}


def engine_url(url: str) -> URL:
    """The URL SQLAlchemy gets: `postgresql://` and `postgres://` mean psycopg 3 here
    (SQLAlchemy's default driver for that scheme is psycopg2, which is not installed)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreUnavailable(
            f"CNN_STUDIO_DB={url!r} is not a database URL: use "
            "postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset it for the workspace's "
            "SQLite file.") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def engines(url: str) -> tuple[Engine, Engine]:
    """(writer, reader) engines for a URL, made once per process; the tables are created on
    first use. On PostgreSQL both are one pooled engine."""
    if url not in _engines:
        writer, reader = make_engines(url)
        try:
            with guarded(url), writer.begin() as conn:
                if conn.dialect.name == "postgresql":  # workers starting together on a new db
                    conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
                metadata.create_all(conn)
                add_missing_columns(conn)
        except BaseException:
            writer.dispose()
            reader.dispose()
            raise
        _engines[url] = (writer, reader)
    return _engines[url]


def add_missing_columns(conn: Connection) -> None:
    """A store made by an earlier version lacks the columns added since (all nullable): add
    them, so an existing workspace keeps working after an upgrade."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                kind = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')


def make_engines(url: str) -> tuple[Engine, Engine]:
    target = engine_url(url)
    try:
        if target.get_backend_name() == "postgresql":
            engine = create_engine(target, **POSTGRES_ENGINE_OPTIONS)
            return engine, engine
        writer, reader = create_engine(target), create_engine(target)
    except ModuleNotFoundError as error:
        raise StoreUnavailable(
            f"The driver for {safe_url(url)} is not installed ({error.name}): run "
            "`.venv/bin/pip install -r requirements.txt` (PostgreSQL needs psycopg).") from None
    except ArgumentError as error:
        raise StoreUnavailable(f"CNN_STUDIO_DB={safe_url(url)} cannot be used: {error}. "
                               "Use postgresql://USER:PASSWORD@HOST:5432/DATABASE, or unset "
                               "it for the workspace's SQLite file.") from None
    if writer.dialect.name == "sqlite":
        configure_sqlite(writer, immediate=True)
        configure_sqlite(reader, immediate=False)
    return writer, reader


def forget_engines(url: str) -> None:
    """Close this process's connections to `url` (say, before dropping that database)."""
    for engine in set(_engines.pop(url, ())):
        engine.dispose()


def _after_fork_in_child() -> None:
    # A forked child must not use the parent's pooled sockets; it opens its own.
    for pair in _engines.values():
        for engine in set(pair):
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


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


@contextmanager
def guarded(url: str) -> Iterator[None]:
    """Turn "cannot reach or open the database" into StoreUnavailable saying what to check."""
    try:
        yield
    except (OperationalError, InterfaceError) as error:
        if not unreachable(error):
            raise
        raise StoreUnavailable(unavailable_message(url, error)) from error


def unreachable(error: OperationalError | InterfaceError) -> bool:
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)  # psycopg; sqlite3 errors have none
    return sqlstate is None or sqlstate.startswith(UNREACHABLE_SQLSTATES)


def unavailable_message(url: str, error: Exception) -> str:
    cause = getattr(error, "orig", None) or error
    detail = (str(cause).strip().splitlines() or [cause.__class__.__name__])[0]
    if engine_url(url).get_backend_name() == "sqlite":
        return (f"The store's SQLite database ({safe_url(url)}) cannot be used: {detail}. "
                "Check that the workspace folder (CNN_STUDIO_HOME) exists, is writable and has "
                "free space; SQLite locks badly over NFS, so to share a store between machines "
                "set CNN_STUDIO_DB to a PostgreSQL URL.")
    return (f"Cannot reach the store's database at {safe_url(url)}: {detail}. Check that the "
            "PostgreSQL server is running and listens on that host and port (listen_addresses), "
            "that it lets this machine in (pg_hba.conf, firewall), and that the user, password "
            "and database in CNN_STUDIO_DB are right (the database must exist).")


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or db_url()
        self.writer, self.reader = engines(self.url)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite), committed on success."""
        with guarded(self.url), self.writer.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with guarded(self.url), self.reader.begin() as conn:
            yield conn

    def ping(self) -> None:
        """Raise StoreUnavailable (saying what to check) unless the database answers."""
        with self.reading() as conn:
            conn.execute(select(1)).scalar_one()

    # Datasets -------------------------------------------------------------------------------

    def record_dataset(self, summary: dict) -> None:
        row = {"name": summary["name"], "created_at": time.time(), "summary": json.dumps(summary)}
        statement = dialect_insert(self.writer, datasets_table).values(**row)
        statement = statement.on_conflict_do_update(
            index_elements=["name"], set_={"created_at": statement.excluded.created_at,
                                           "summary": statement.excluded.summary})
        with self.writing() as conn:
            conn.execute(statement)

    def dataset_summaries(self) -> list[dict]:
        with self.reading() as conn:
            rows = conn.execute(select(datasets_table).order_by(datasets_table.c.name)).all()
        return [json.loads(row.summary) | {"created_at": row.created_at} for row in rows]

    def forget_dataset(self, name: str) -> None:
        with self.writing() as conn:
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
        with self.writing() as conn:
            conn.execute(runs_table.insert().values(**row))
        return run_id

    def get_run(self, ref: str) -> dict | None:
        """A run by id, or by name (the newest with that name)."""
        query = (select(runs_table)
                 .where(or_(runs_table.c.run_id == ref, runs_table.c.name == ref))
                 .order_by((runs_table.c.run_id == ref).desc(), runs_table.c.created_at.desc()))
        with self.reading() as conn:
            row = conn.execute(query).first()
        return run_row(row) if row else None

    def list_runs(self, status: Iterable[str] | None = None) -> list[dict]:
        query = select(runs_table).order_by(runs_table.c.created_at.desc())
        if status is not None:
            query = query.where(runs_table.c.status.in_(list(status)))
        with self.reading() as conn:
            return [run_row(row) for row in conn.execute(query).all()]

    def update_run(self, run_id: str, **fields) -> None:
        for key in ("config", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        with self.writing() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id).values(**fields))

    def claim_next_run(self, worker_pid: int, max_running: int = 1,
                       worker_host: str | None = None) -> dict | None:
        """Move the oldest queued run to running for this worker, if a slot is free.

        Claims are one at a time: SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock
        (held to commit), so two workers never both see a free slot or the same run."""
        with self.writing() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
            running = conn.execute(select(func.count()).select_from(runs_table)
                                   .where(runs_table.c.status == "running")).scalar_one()
            if running >= max_running:
                return None
            row = conn.execute(select(runs_table.c.run_id).where(runs_table.c.status == "queued")
                               .order_by(runs_table.c.created_at).limit(1)
                               .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            now = time.time()
            claimed = conn.execute(
                update(runs_table)
                .where(runs_table.c.run_id == row.run_id, runs_table.c.status == "queued")
                .values(status="running", worker_pid=worker_pid, worker_host=worker_host,
                        started_at=now,
                        heartbeat_at=now, finished_at=None, error=None)).rowcount
        return self.get_run(row.run_id) if claimed == 1 else None

    def heartbeat(self, run_id: str) -> bool:
        """Record that the run is alive; return True when a stop was requested."""
        with self.writing() as conn:
            flag = conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                                .values(heartbeat_at=time.time())
                                .returning(runs_table.c.stop_requested)).scalar_one_or_none()
        return bool(flag)

    def request_stop(self, run_id: str) -> None:
        """Ask a running run to stop; a queued one is stopped at once."""
        with self.writing() as conn:
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                         .values(stop_requested=1))
            conn.execute(update(runs_table).where(runs_table.c.run_id == run_id)
                         .where(runs_table.c.status == "queued")
                         .values(status="stopped", finished_at=time.time()))

    def mark_stale_runs(self, max_age_s: float) -> list[str]:
        """Running rows whose heartbeat is older than max_age_s become `interrupted`; returns
        their ids. One UPDATE, so a run that finishes meanwhile is never marked."""
        now = time.time()
        stale = func.coalesce(runs_table.c.heartbeat_at, 0) < now - max_age_s
        with self.writing() as conn:
            rows = conn.execute(
                update(runs_table).where(runs_table.c.status == "running", stale)
                .values(status="interrupted", finished_at=now,
                        error="The worker stopped sending heartbeats (killed or crashed). "
                              "Resume to continue from the last checkpoint.")
                .returning(runs_table.c.run_id)).all()
        return [row.run_id for row in rows]

    def interrupt_dead_runs(self, host: str, alive: Callable[[int], bool]) -> list[str]:
        """Running rows whose worker ran on `host` and whose pid `alive` says is gone become
        `interrupted` at once; returns their ids. Each update checks the same pid still holds
        the run, so a run that a new worker claimed meanwhile is left alone."""
        with self.reading() as conn:
            rows = conn.execute(select(runs_table.c.run_id, runs_table.c.worker_pid)
                                .where(runs_table.c.status == "running",
                                       runs_table.c.worker_host == host,
                                       runs_table.c.worker_pid.is_not(None))).all()
        interrupted = []
        for row in rows:
            if alive(row.worker_pid):
                continue
            with self.writing() as conn:
                changed = conn.execute(
                    update(runs_table).where(runs_table.c.run_id == row.run_id,
                                             runs_table.c.status == "running",
                                             runs_table.c.worker_pid == row.worker_pid)
                    .values(status="interrupted", finished_at=time.time(),
                            error="The worker process is gone (killed, crashed or stopped with "
                                  "Ctrl-C). Resume to continue from the last checkpoint.")
                ).rowcount
            if changed:
                interrupted.append(row.run_id)
        return interrupted

    def delete_run(self, run_id: str) -> None:
        with self.writing() as conn:
            conn.execute(delete(metrics_table).where(metrics_table.c.run_id == run_id))
            conn.execute(delete(runs_table).where(runs_table.c.run_id == run_id))

    # Imports ------------------------------------------------------------------------------

    def create_import(self, job_id: str, name: str, kind: str, request: dict) -> None:
        row = {"job_id": job_id, "name": name, "kind": kind, "request": json.dumps(request),
               "status": "queued", "created_at": time.time(), "done": 0, "total": 0,
               "cancel_requested": 0, "dismissed": 0}
        with self.writing() as conn:
            conn.execute(imports_table.insert().values(**row))

    def get_import(self, job_id: str) -> dict | None:
        with self.reading() as conn:
            row = conn.execute(select(imports_table)
                               .where(imports_table.c.job_id == job_id)).first()
        return import_row(row) if row else None

    def list_imports(self, since: float = 0.0) -> list[dict]:
        """Imports created after `since` (Unix seconds), newest first."""
        query = (select(imports_table).where(imports_table.c.created_at >= since)
                 .order_by(imports_table.c.created_at.desc()))
        with self.reading() as conn:
            return [import_row(row) for row in conn.execute(query).all()]

    def update_import(self, job_id: str, **fields) -> None:
        if "summary" in fields and not isinstance(fields["summary"], str):
            fields["summary"] = json.dumps(fields["summary"])
        with self.writing() as conn:
            conn.execute(update(imports_table).where(imports_table.c.job_id == job_id)
                         .values(**fields))

    def claim_next_import(self, worker_pid: int, worker_host: str) -> dict | None:
        """Move the oldest queued import to running for this worker."""
        with self.writing() as conn:
            row = conn.execute(select(imports_table.c.job_id)
                               .where(imports_table.c.status == "queued")
                               .order_by(imports_table.c.created_at).limit(1)
                               .with_for_update(skip_locked=True)).first()
            if row is None:
                return None
            claimed = conn.execute(
                update(imports_table).where(imports_table.c.job_id == row.job_id,
                                            imports_table.c.status == "queued")
                .values(status="running", worker_pid=worker_pid, worker_host=worker_host,
                        started_at=time.time())).rowcount
        return self.get_import(row.job_id) if claimed == 1 else None

    def import_progress(self, job_id: str, done: int, total: int) -> bool:
        """Record how far an import got; True when the user asked to cancel it."""
        with self.writing() as conn:
            flag = conn.execute(update(imports_table).where(imports_table.c.job_id == job_id)
                                .values(done=done, total=total)
                                .returning(imports_table.c.cancel_requested)
                                ).scalar_one_or_none()
        return bool(flag)

    def request_import_cancel(self, job_id: str) -> None:
        """Ask a running import to stop; a queued one is cancelled at once."""
        with self.writing() as conn:
            conn.execute(update(imports_table).where(imports_table.c.job_id == job_id)
                         .values(cancel_requested=1))
            conn.execute(update(imports_table).where(imports_table.c.job_id == job_id,
                                                     imports_table.c.status == "queued")
                         .values(status="cancelled", finished_at=time.time()))

    def interrupt_dead_imports(self, host: str, alive: Callable[[int], bool]) -> list[str]:
        """Running imports whose worker on `host` is gone become `interrupted`."""
        with self.reading() as conn:
            rows = conn.execute(select(imports_table.c.job_id, imports_table.c.worker_pid)
                                .where(imports_table.c.status == "running",
                                       imports_table.c.worker_host == host)).all()
        dead = [row for row in rows if not (row.worker_pid and alive(row.worker_pid))]
        for row in dead:
            with self.writing() as conn:
                conn.execute(update(imports_table)
                             .where(imports_table.c.job_id == row.job_id,
                                    imports_table.c.status == "running",
                                    imports_table.c.worker_pid == row.worker_pid)
                             .values(status="interrupted", finished_at=time.time(),
                                     error="The import's worker process is gone (killed or "
                                           "crashed); nothing was kept. Try again."))
        return [row.job_id for row in dead]

    # Metrics --------------------------------------------------------------------------------

    def add_metrics(self, run_id: str, rows: Iterable[tuple[int, float, str, float]]) -> None:
        """Write (step, epoch, name, value) rows; a row already there is replaced, so a resumed
        run that repeats a step does not duplicate it."""
        now = time.time()
        latest = {(int(step), name): {"run_id": run_id, "step": int(step), "epoch": float(epoch),
                                      "name": name, "value": float(value), "time": now}
                  for step, epoch, name, value in rows}  # a key twice in one batch: last wins
        if not latest:
            return
        values = [latest[key] for key in sorted(latest)]  # one lock order for every writer
        with self.writing() as conn:
            conn.execute(metrics_upsert(self.writer), values)

    def metrics(self, run_id: str, min_step: int = 0,
                names: Iterable[str] | None = None) -> list[dict]:
        """Metric rows of a run with step ≥ min_step, oldest first (pages poll with the last
        step they drew)."""
        query = (select(metrics_table).where(metrics_table.c.run_id == run_id)
                 .where(metrics_table.c.step >= min_step)
                 .order_by(metrics_table.c.step, metrics_table.c.name))
        if names is not None:
            query = query.where(metrics_table.c.name.in_(list(names)))
        with self.reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]


def dialect_insert(engine: Engine, table: Table):
    """INSERT with the dialect's ON CONFLICT support (both spell it the same way)."""
    return (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)


def metrics_upsert(engine: Engine):
    statement = dialect_insert(engine, metrics_table)
    return statement.on_conflict_do_update(
        index_elements=["run_id", "step", "name"],
        set_={"value": statement.excluded.value, "epoch": statement.excluded.epoch,
              "time": statement.excluded.time})


def import_row(row) -> dict:
    data = dict(row._mapping)
    data["request"] = json.loads(data["request"])
    data["summary"] = json.loads(data["summary"]) if data.get("summary") else {}
    return data


def run_row(row) -> dict:
    data = dict(row._mapping)
    data["config"] = json.loads(data["config"])
    data["summary"] = json.loads(data["summary"]) if data.get("summary") else {}
    return data
