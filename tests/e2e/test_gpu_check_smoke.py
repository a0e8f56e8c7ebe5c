"""`python -m core bench gpu --smoke --device cpu` from start to end: every section and target
runs tiny on the CPU (the CUDA-only ones say so), nothing fails, stdout is one JSON object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CUDA_ONLY = {"torch.compile + CUDA graphs", "pinned-memory path"}


def test_the_gpu_check_smoke_runs_every_section_on_the_cpu(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "core", "bench", "gpu", "--smoke", "--device", "cpu", "--json"],
        capture_output=True, text=True, timeout=900, cwd=REPO_ROOT,
        env=os.environ | {"CNN_STUDIO_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    statuses = {row["section"]: row["status"] for row in report["sections"]}
    assert {name for name, status in statuses.items() if status != "ok"} == CUDA_ONLY, statuses
    assert all(statuses[name] == "skipped: no CUDA" for name in CUDA_ONLY)
    targets = {row["target"]: row for row in report["targets"]}
    assert all(row["status"] != "failed" for row in targets.values()), targets
    assert all(row["met"] == "—" for row in targets.values())  # a smoke run judges nothing
    assert report["environment"]["mode"] == "smoke"
