"""Does watching a run slow it down? Training images/s headless vs with the Runs page open.

Both sides train the same config in the background worker of one workspace, one after the
other: first with no browser, then with headless Chromium showing the run's live view
(polling the store once a second). Prints a markdown table with device and versions.

    .venv/bin/python bench/live_page_overhead.py [--data digits|fashion-mnist] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def resident_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc/PID/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def chromium_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if "chromium" in (entry / "comm").read_text():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def train_in_worker(config, store) -> dict:
    from core.runs import queue

    run_id = queue.submit(config, store)
    while store.get_run(run_id)["status"] in ("queued", "running"):
        time.sleep(0.5)
    return store.get_run(run_id)


def watched(config, store, port: int, server_pid: int) -> tuple[dict, float, float, float]:
    """Train with the live page open; also return the CPU seconds the Streamlit server and
    Chromium used while the run trained, and the server's largest resident memory (MB) seen
    while it served the live view."""
    from playwright.sync_api import sync_playwright

    from core.runs import queue

    run_id = queue.submit(config, store)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://localhost:{port}/runs?run_pick={run_id}", wait_until="networkidle")
        while store.get_run(run_id)["status"] == "queued":
            time.sleep(0.2)
        server_start, browser_start = cpu_seconds([server_pid]), cpu_seconds(chromium_pids())
        server_rss = 0.0
        while store.get_run(run_id)["status"] == "running":
            server_rss = max(server_rss, resident_mb(server_pid)[0])
            time.sleep(0.5)
        server = cpu_seconds([server_pid]) - server_start
        browser_cpu = cpu_seconds(chromium_pids()) - browser_start
        browser.close()
    return store.get_run(run_id), server, browser_cpu, server_rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default="digits", choices=("digits", "fashion-mnist", "shapes"))
    parser.add_argument("--model", default="tiny-cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    os.environ["CNN_STUDIO_HOME"] = tempfile.mkdtemp(prefix="cnn-studio-bench-")

    from core.analysis.bench import environment_line
    from core.config import TrainConfig
    from core.data.catalog import add_demo
    from core.store import Store
    from core.training.device import pick_device

    add_demo(args.data, "bench")
    store = Store()
    config = TrainConfig(data="bench", model=args.model, epochs=args.epochs,
                         batch_size=args.batch_size)
    headless = train_in_worker(config, store)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true"], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)
        idle_rss = resident_mb(server.pid)[0]
        live, server_cpu, browser_cpu, server_rss = watched(config, store, port, server.pid)
        server_peak = resident_mb(server.pid)[1]
    finally:
        server.terminate()
    rows = [("headless", headless), ("Runs page open", live)]
    base = headless["summary"]["train_images_per_s"]
    print(f"Device: {environment_line(pick_device('auto'))}  ")
    print(f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print("| side | train images/s | vs headless | test acc |")
    print("|---|---|---|---|")
    for label, run in rows:
        speed = run["summary"]["train_images_per_s"]
        print(f"| {label} | {speed:,.0f} | {speed / base:.3f} | {run['test_acc']:.4f} |")
    seconds = live["finished_at"] - live["started_at"]
    print(f"\nWhile the watched run trained ({seconds:.0f} s on {os.cpu_count()} cores): "
          f"Streamlit server {server_cpu:.1f} CPU-s ({server_cpu / seconds:.0%} of one core), "
          f"Chromium {browser_cpu:.1f} CPU-s ({browser_cpu / seconds:.0%} of one core).")
    print(f"\nResident memory: Streamlit server {idle_rss:,.0f} MB before the page opened, "
          f"{server_rss:,.0f} MB at most while the live view ran (peak {server_peak:,.0f} MB "
          f"over its life); the training worker peaked at "
          f"{live['summary'].get('peak_rss_mb', 0):,.0f} MB. The server holds no training "
          "state: the model, the data and the optimizer live in the worker process.")


if __name__ == "__main__":
    main()
