"""`bench gpu`'s reporting: every section gets a row whatever happens in it, CUDA-only paths
say "skipped: no CUDA" without one, and the table carries the device and the command."""

from __future__ import annotations

from pathlib import Path

import torch

from core.analysis.gpu_check import FAILED, NO_CUDA, OK, SKIPPED, Context, Section, run_section
from core.analysis.gpu_report import exit_code, markdown


def cpu_context(tmp_path: Path) -> Context:
    return Context(torch.device("cpu"), smoke=True, quick=False, home=tmp_path, fm_dir=None)


def test_a_cuda_path_is_skipped_honestly_without_cuda(tmp_path) -> None:
    def must_not_run(ctx: Context) -> str:
        raise AssertionError("a CUDA-only section ran on the CPU")

    row = run_section(Section("compile", must_not_run, needs_cuda=True), cpu_context(tmp_path))
    assert row["status"] == NO_CUDA == "skipped: no CUDA"


def test_a_missing_package_skips_its_section_and_says_which(tmp_path) -> None:
    def needs_sqlalchemy(ctx: Context) -> str:
        raise ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy")

    row = run_section(Section("export", needs_sqlalchemy), cpu_context(tmp_path))
    assert row["status"] == SKIPPED and "missing package sqlalchemy" in row["detail"]


def test_a_failing_section_is_a_failed_row_not_a_crash(tmp_path) -> None:
    def broken(ctx: Context) -> str:
        raise RuntimeError("parity lost")

    rows = [run_section(Section("onnx", broken), cpu_context(tmp_path)),
            run_section(Section("ok", lambda ctx: "fine"), cpu_context(tmp_path))]
    assert [row["status"] for row in rows] == [FAILED, OK]
    assert rows[0]["detail"] == "RuntimeError: parity lost"
    report = {"environment": {"device": "CPU", "torch": "2", "cuda": None, "python": "3",
                              "cpu_cores": 2, "date": "today", "command": "python -m core "
                              "bench gpu --smoke", "mode": "smoke"},
              "sections": rows, "targets": []}
    assert exit_code(report) == 1
    table = markdown(report)
    assert "Command: `python -m core bench gpu --smoke`" in table
    assert "| onnx | failed | RuntimeError: parity lost |" in table
