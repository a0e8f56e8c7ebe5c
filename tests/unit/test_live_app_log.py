"""The browser tests' server-log check catches Streamlit's own deprecation messages."""

from __future__ import annotations

from pathlib import Path

from live_app import deprecation_warnings
from streamlit.deprecation_util import make_deprecated_name_warning


def test_streamlit_deprecation_message_in_the_log_is_found(tmp_path: Path) -> None:
    message = make_deprecated_name_warning("use_container_width", "width", "2025-12-31",
                                           include_st_prefix=False)
    log = tmp_path / "streamlit.log"
    log.write_text("2026-12-02 07:31:30.545 Uvicorn server started on localhost:54155\n"
                   f"2026-12-02 07:31:31.000 {message}\n")
    assert len(deprecation_warnings(log)) == 1


def test_a_clean_log_has_no_deprecation(tmp_path: Path) -> None:
    log = tmp_path / "streamlit.log"
    log.write_text("  You can now view your Streamlit app in your browser.\n  Stopping...\n")
    assert deprecation_warnings(log) == []
    assert deprecation_warnings(tmp_path / "missing.log") == []
