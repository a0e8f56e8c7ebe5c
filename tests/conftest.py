"""Shared fixtures: every test gets its own workspace (CNN_STUDIO_HOME) and store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@pytest.fixture
def studio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace for this test alone; core reads CNN_STUDIO_HOME at call time, and the
    store (keyed by URL) gets a fresh SQLite file under it."""
    home = tmp_path / "workspace"
    monkeypatch.setenv("CNN_STUDIO_HOME", str(home))
    monkeypatch.delenv("CNN_STUDIO_DB", raising=False)
    return home


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, studio_home: Path,
              monkeypatch: pytest.MonkeyPatch):
    """A fresh, empty store for this test, once per database: the workspace's SQLite file, and a
    new PostgreSQL database (dropped afterwards) on the server CNN_STUDIO_TEST_PG names. Store()
    and workers the test starts use it too (CNN_STUDIO_DB names the PostgreSQL one; unset, it
    is the workspace's SQLite file)."""
    from core.workspace import db_url

    if request.param == "sqlite":
        yield db_url()
        return
    with scratch_postgres_database() as url:
        monkeypatch.setenv("CNN_STUDIO_DB", url)
        yield url


@contextmanager
def scratch_postgres_database() -> Iterator[str]:
    """CREATE DATABASE on the server of CNN_STUDIO_TEST_PG (an admin URL such as
    postgresql://USER:PASSWORD@127.0.0.1:5432/postgres, of a role that may create databases);
    yields its URL and drops it. Without the variable: skip, unless CNN_STUDIO_REQUIRE_PG=1
    (CI sets it), where a PostgreSQL test that cannot run fails instead."""
    import os
    import secrets

    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import OperationalError

    from core.store import engine_url, forget_engines

    admin = os.environ.get("CNN_STUDIO_TEST_PG")
    if not admin:
        reason = ("the PostgreSQL cases need CNN_STUDIO_TEST_PG=postgresql://USER:PASSWORD@HOST"
                  ":5432/postgres (a role with CREATEDB; `sudo bash .ci/postgres` makes one)")
        if os.environ.get("CNN_STUDIO_REQUIRE_PG") == "1":
            pytest.fail(f"CNN_STUDIO_REQUIRE_PG=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    name = f"cnn_studio_test_{secrets.token_hex(6)}"
    server = create_engine(engine_url(admin), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        server.dispose()
        pytest.fail(f"Cannot create a database on CNN_STUDIO_TEST_PG's server: {error.orig}",
                    pytrace=False)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        forget_engines(url)
        drop_database(server, name)
        server.dispose()


def drop_database(server, name: str) -> None:
    """DROP … WITH (FORCE): ends the sessions a test left (a worker's, a Ray task's pool). A
    role that is not superuser is refused while autovacuum works on the database (its process
    belongs to no role: "must be a member of the role whose process is being terminated"), as
    after the soak; it finishes within seconds, so try again."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    for attempt in range(30):
        try:
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError:  # insufficient privilege
            if attempt == 29:
                raise
            time.sleep(1)


@pytest.fixture
def shapes_dataset(studio_home: Path):
    """The built-in `shapes` demo (300 32x32 colour images, 3 classes) as dataset `shapes`."""
    from core.data.catalog import add_demo

    return add_demo("shapes", "shapes")


@pytest.fixture(scope="module")
def shapes_workspace(tmp_path_factory: pytest.TempPathFactory):
    """A workspace shared by one test module, holding the `shapes` demo; yields its Store."""
    from core.data.catalog import add_demo
    from core.store import Store

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_STUDIO_HOME", str(tmp_path_factory.mktemp("module") / "workspace"))
        patch.delenv("CNN_STUDIO_DB", raising=False)  # never a shared database
        add_demo("shapes", "shapes")
        yield Store()


@pytest.fixture(scope="session")
def train_shapes_run():
    """A function that trains a run on `shapes` in this process (one epoch of tiny-cnn on the
    CPU unless told otherwise) and returns its id; a few seconds each."""
    from core.config import TrainConfig
    from core.runs.execute import execute_run
    from core.runs.record import new_run

    def train(store, **settings) -> str:
        config = TrainConfig(**({"data": "shapes", "model": "tiny-cnn", "epochs": 1,
                                 "device": "cpu"} | settings))
        run_id = new_run(config, store, status="running")
        assert execute_run(run_id, store)["status"] == "completed"
        return run_id

    return train


@pytest.fixture(scope="session")
def trained_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A workspace holding `shapes` and one completed one-epoch tiny-cnn run named `first`,
    trained once per session; (its folder, the run id). Tests get copies (`trained_run`)."""
    from core.config import TrainConfig
    from core.data.catalog import add_demo
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    home = tmp_path_factory.mktemp("trained-template") / "workspace"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        add_demo("shapes", "shapes")
        store = Store()
        config = TrainConfig(data="shapes", model="tiny-cnn", epochs=1, name="first")
        run_id = new_run(config, store, status="running")
        assert execute_run(run_id, store)["status"] == "completed"
    with sqlite3.connect(home / "studio.db") as conn:  # fold the WAL in: one file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return home, run_id


@pytest.fixture
def trained_run(trained_template: tuple[Path, str], studio_home: Path) -> str:
    """This test's own workspace: a copy of the session's trained template (the `shapes`
    dataset and one completed run, whose id this returns), so no test trains it again."""
    import shutil

    template, run_id = trained_template
    shutil.copytree(template, studio_home)
    return run_id


LANES = ("unit", "app", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test carries its lane's marker (its folder), so `-m unit`, `-m "not e2e"` select."""
    for item in items:
        lane = next((part for part in Path(item.path).parts if part in LANES), None)
        if lane:
            item.add_marker(lane)
