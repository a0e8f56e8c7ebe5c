"""Peak resident memory of a training run whose cache is larger than the memory it may use.

    python bench/memory_cap.py [--images 4000] [--image-size 160] [--cap 100M]

Generates photo-sized JPEGs (core.analysis.photo_bench), imports them and builds the cache at
--image-size in a scratch workspace, then trains one epoch of tiny-cnn twice in a fresh
`python -m core train` process: without a cap (the splits are copied into memory) and with
CNN_STUDIO_MEMORY_CAP=--cap (the splits are read from the cache file batch by batch). It
samples each process's VmRSS from /proc every 0.2 s and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=160)
    parser.add_argument("--cap", default="100M")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    os.environ["CNN_STUDIO_HOME"] = str(home / "ws")
    sys.path.insert(0, str(REPO))
    from core.analysis.photo_bench import environment_line, write_photos
    from core.data.cache import cache_path, load_cache
    from core.data.ingest import import_dataset

    write_photos(home / "upload", args.images, (500, 375), seed=0)
    dataset = import_dataset(home / "upload", "photos")
    load_cache(dataset, args.image_size)
    cache_bytes = cache_path(dataset, args.image_size).stat().st_size
    rows = [measure(args, None), measure(args, args.cap)]
    print(f"Device: {environment_line()}  \nCommand: `python bench/memory_cap.py "
          f"--images {args.images} --image-size {args.image_size} --cap {args.cap}`\n")
    print(f"Cache: {cache_bytes / 2**20:.0f} MiB ({args.images} images at "
          f"{args.image_size} px)\n")
    print("| CNN_STUDIO_MEMORY_CAP | peak RSS (MiB) | run wall (s) | status |")
    print("|---|---|---|---|")
    for cap, peak, wall, code in rows:
        print(f"| {cap or 'unset (in memory)'} | {peak / 2**20:,.0f} | {wall:.0f} | "
              f"{'ok' if code == 0 else f'exit {code}'} |")


def measure(args: argparse.Namespace, cap: str | None) -> tuple[str | None, int, float, int]:
    env = dict(os.environ)
    env.pop("CNN_STUDIO_MEMORY_CAP", None)
    if cap:
        env["CNN_STUDIO_MEMORY_CAP"] = cap
    command = [sys.executable, "-m", "core", "train", "--data", "photos", "--model", "tiny-cnn",
               "--epochs", "1", "--image-size", str(args.image_size), "--device", "cpu",
               "--batch-size", "64", "--name", f"cap-{cap or 'none'}"]
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    peak = 0
    while process.poll() is None:
        peak = max(peak, resident_bytes(process.pid))
        time.sleep(0.2)
    return cap, peak, time.perf_counter() - start, process.returncode


def resident_bytes(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), 0 once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


if __name__ == "__main__":
    main()
