"""Small Streamlit helpers every page shares: errors, formatting, the store, metric logs."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from core.data.dataset import DatasetError
from core.data.images import IMAGE_EXTENSIONS
from core.runs.record import run_folder
from core.store import ACTIVE, Store, StoreUnavailable
from core.training.run_files import LOG, has_trained_model, weights_file
from models import ModelError
from pages.ui.metric_log import MetricLog

USER_ERRORS = (ValueError, DatasetError, ModelError, OSError)  # ModelUnavailable is a ValueError
MAX_LOGS = 24  # metric logs kept per session (the oldest are dropped)
IMAGE_TYPES = sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS)  # what the uploaders take
MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>$:])")
SHORTCODE_START = re.compile(r":(?=[A-Za-z])")
# where the markdown renderer would start a link of its own (GFM autolinks: a scheme, "www.",
# an e-mail's "@"): a zero-width space there keeps user text plain
AUTOLINK = re.compile(r"(?i)\b(?:https?|ftp|mailto)\\:|\bwww(?=\\\.)|@")

MISSING = "–"  # a missing value in a table: st.dataframe(..., placeholder=MISSING)

ICONS = {  # Material icons: Streamlit ships the font, so they show without emoji fonts
    "home": ":material/home:", "datasets": ":material/folder_open:",
    "train": ":material/model_training:", "runs": ":material/monitoring:",
    "compare": ":material/compare_arrows:", "classify": ":material/image_search:",
    "sweeps": ":material/grid_view:", "mistakes": ":material/troubleshoot:",
}
ROOT = Path(__file__).resolve().parents[2]  # app.py's folder
PAGE_KEYS = ("home", "datasets", "train", "runs", "compare", "classify", "sweeps", "mistakes")
# page files, absolute, for st.Page, st.page_link and st.switch_page (a page file Streamlit
# ran by itself on a fresh server is the main script then; see router.py)
PAGES = {key: str(ROOT / "pages" / f"{key}.py") for key in PAGE_KEYS}


def plain(text: object) -> str:
    """User text (a run, dataset, class or file name, or a message quoting one) escaped for
    the elements that render markdown, so it reads exactly as typed and never as markup."""
    escaped = MARKDOWN_SPECIAL.sub(r"\\\1", str(text))
    escaped = AUTOLINK.sub(lambda match: match.group(0) + "\u200b", escaped)  # never a link
    return SHORTCODE_START.sub(":\u200b", escaped)  # no :smile: or :material/x: icons either


def store() -> Store:
    return Store()  # engines are made once per process and URL; a Store is cheap


def stop_unless_store_answers() -> None:
    """An unreachable database (a PostgreSQL URL in CNN_STUDIO_DB) gets a message saying what to
    check instead of Streamlit's redacted error on every page."""
    try:
        store().ping()
    except StoreUnavailable as error:
        st.error(plain(error), icon=":material/database:")
        st.stop()


@contextmanager
def user_errors(action: str) -> Iterator[None]:
    """Show a problem the person can fix as st.error (no traceback): "Could not <action>: …"."""
    try:
        yield
    except USER_ERRORS as error:
        st.error(f"Could not {action}: {plain(error)}", icon=":material/error:")


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f}s"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def count(value: float | None) -> str:
    """1234567 → 1.23M."""
    if value is None:
        return "–"
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.0f}"


def run_seconds(run: dict) -> float | None:
    """Wall time so far (running) or in all (finished); None before it started."""
    if not run.get("started_at"):
        return None
    end = run.get("finished_at") or (time.time() if run["status"] == "running" else None)
    return end - run["started_at"] if end else None


def run_label(run: dict) -> str:  # for select boxes, which show plain text
    return f"{run['name']}  ·  {run['status']}"


def active_runs(runs: list[dict]) -> list[dict]:
    return [run for run in runs if run["status"] in ACTIVE]


def has_model(run: dict) -> bool:
    folder = run_folder(run["run_id"])
    return has_trained_model(folder)


def weights_stamp(run_id: str) -> int:
    """The best checkpoint's mtime: a key that changes when the run is trained further."""
    try:
        return weights_file(run_folder(run_id)).stat().st_mtime_ns
    except FileNotFoundError:
        return 0  # the loader says what is missing


def log_tail(run_id: str, lines: int = 40) -> str:
    path: Path = run_folder(run_id) / LOG
    if not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def metric_log(run: dict, db: Store, names: list[str] | None = None) -> MetricLog:
    """The session's log of this run's metrics, topped up with the rows newer than those
    already drawn. A resumed run (new started_at) starts a fresh log."""
    logs: dict = st.session_state.setdefault("metric_logs", {})
    key = (run["run_id"], run.get("started_at"), tuple(names or ()))
    log = logs.pop(key, None) or MetricLog()
    logs[key] = log  # re-inserted: most recently used last
    while len(logs) > MAX_LOGS:
        logs.pop(next(iter(logs)))
    log.add(db.metrics(run["run_id"], min_step=log.last_step, names=names))
    return log


@st.cache_resource(show_spinner=False)
def device_label() -> str:
    """The GPU's name and memory, or "CPU" (asked once per server)."""
    from core.training.device import describe_device

    return describe_device()


def go_to_run(run_id: str) -> None:
    st.session_state["run_pick"] = run_id
    st.switch_page(PAGES["runs"])


def switch_to(page: str) -> None:
    """st.switch_page from any page: with no query_params Streamlit clears the URL's parameters
    and refuses when a widget is bound to one (bind="query-params", as the Runs page's run
    picker is); replacing them with none works either way."""
    st.switch_page(page, query_params={})


def confirm_delete(kind: str, target: str, question: str, delete: Callable[[], None]) -> None:
    """The second step of a two-step delete (a slip of the mouse loses nothing): the question,
    then "Yes, delete" or "Cancel". `kind` ("run", "dataset") names the session keys."""
    st.warning(question)
    buttons = st.container(horizontal=True)  # side by side however narrow the column is
    if buttons.button("Yes, delete", type="primary", key=f"{kind}_delete_yes"):
        st.session_state.pop(f"confirm_delete_{kind}", None)
        with user_errors(f"delete the {kind}"):
            delete()
            st.session_state.pop(f"{kind}_pick", None)
            st.toast(f"Deleted {kind} {plain(target)}")
            st.rerun()
    if buttons.button("Cancel", key=f"{kind}_delete_no"):
        st.session_state.pop(f"confirm_delete_{kind}", None)
        st.rerun()
