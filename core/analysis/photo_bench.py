"""`bench photos`: the data path on photo-sized JPEGs against plain one-process Pillow loops.

One run generates photo-sized JPEGs (smooth synthetic scenes with grain, so they compress and
decode like photos), zips them, then times on the same files:
  - plain decode        one process, `Image.open(f).convert("RGB")` over the files
  - import              `import_dataset(zip)`: every check, every decode, the stored dataset
  - plain fit           one process, full decode + resize + centre crop (`fit_image`)
  - cache build         `build_cache` at `image_size` (draft decoding, every core)
and reports the disk the dataset takes against the upload, and how far the cache's pixels
move from the full-decode path (PSNR). Nothing of torch is imported.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, features

from core.data.cache import build_cache, cache_path
from core.data.dataset import delete_dataset, list_datasets
from core.data.ingest import import_dataset
from core.data.transforms import fit_image

CLASSES = ("cat", "dog")


def photos(images: int = 2000, size: tuple[int, int] = (500, 375), image_size: int = 150,
           seed: int = 0, repeat: int = 1) -> list[dict]:
    """One row per measured step, in the order above, then the disk ratio and the PSNR. Each
    step is timed `repeat` times and its fastest run kept (the least disturbed by whatever
    else the machine runs)."""
    work = Path(tempfile.mkdtemp(prefix="bench-photos-"))
    name = f"bench-photos-{os.getpid()}"
    try:
        files = write_photos(work / "upload", images, size, seed)
        upload = zip_folder(work / "upload", work / "upload.zip")
        plain, _ = fastest(repeat, len(files), lambda: each(files, plain_decode))
        imported, dataset = fastest(repeat, len(files),
                                    lambda: import_dataset(upload, name, overwrite=True))
        plain_fit, _ = fastest(repeat, len(files),
                               lambda: each(files, partial(plain_fit_image, image_size=image_size)))
        cache, _ = fastest(repeat, len(files), lambda: build_cache(dataset, image_size))
        cached = np.load(cache_path(dataset, image_size), mmap_mode="r")
        psnr = cache_psnr(cached, dataset, files, image_size)
        dataset_bytes = folder_bytes(dataset.folder, skip="cache")
        upload_bytes = upload.stat().st_size
    finally:
        if name in list_datasets():
            delete_dataset(name)
        shutil.rmtree(work, ignore_errors=True)
    return [
        {"step": "plain decode (1 process, Image.open().convert('RGB'))", **plain},
        {"step": "import (checks + decode + store)", **imported,
         "vs_plain": imported["images_per_s"] / plain["images_per_s"]},
        {"step": f"plain decode + resize + crop to {image_size} px (1 process)", **plain_fit},
        {"step": f"cache build at {image_size} px", **cache,
         "vs_plain": cache["images_per_s"] / plain_fit["images_per_s"]},
        {"step": "disk: dataset bytes / upload (zip) bytes",
         "value": dataset_bytes / upload_bytes,
         "detail": f"{dataset_bytes / 2**20:.1f} MiB / {upload_bytes / 2**20:.1f} MiB"},
        {"step": "cache pixels vs full decode + fit (PSNR dB)", "value": psnr["mean"],
         "detail": f"min {psnr['min']:.1f} dB, identical images {psnr['identical']}"},
    ]


def write_photos(folder: Path, count: int, size: tuple[int, int], seed: int) -> list[Path]:
    """`count` JPEGs of `size` (quality 85, 4:2:0, as cameras and the web save them)."""
    rng = np.random.default_rng(seed)
    files = []
    for index in range(count):
        path = folder / CLASSES[index % len(CLASSES)] / f"{index:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_photo(rng, size).save(path, format="JPEG", quality=85)
        files.append(path)
    return files


def synthetic_photo(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """Smooth colour fields (a blurred 6×8 random image blown up) plus grain and a few edges."""
    width, height = size
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.normal(0, 3, (height, width, 1)).astype(np.int16)
    pixels = base + grain
    for _ in range(3):  # hard edges, as objects have
        x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
        pixels[y:y + int(rng.integers(20, height // 2)), x:x + int(rng.integers(20, width // 2))] \
            += rng.integers(-60, 60, 3, dtype=np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def zip_folder(folder: Path, target: Path) -> Path:
    """The folder as a deflated zip, as an archiver would make it."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*.jpg")):
            archive.write(path, path.relative_to(folder).as_posix())
    return target


def each(files: list[Path], work) -> None:
    for path in files:
        work(path)  # the result is dropped: 2,000 decoded photos would not fit in memory


def plain_decode(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def plain_fit_image(path: Path, image_size: int) -> np.ndarray:
    with Image.open(path) as image:
        return fit_image(image.convert("RGB"), image_size, 3)


def fastest(repeat: int, count: int, work) -> tuple[dict, object]:
    """`rate` of the fastest of `repeat` runs of `work`, and what that run returned."""
    runs = [rate(count, work) for _ in range(max(1, repeat))]
    row, result = min(runs, key=lambda run: run[0]["seconds"])
    return row | {"runs": len(runs)}, result


def rate(count: int, work) -> tuple[dict, object]:
    """({images, seconds, images_per_s, cpu_ms_per_image}, what `work()` returned). CPU time
    counts this process and its finished workers: on a shared machine it is the steadier
    figure, as wall time depends on what else runs."""
    start, cpu_start = time.perf_counter(), cpu_seconds()
    result = work()
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    return {"images": count, "seconds": seconds, "images_per_s": count / seconds,
            "cpu_ms_per_image": 1000 * cpu / count}, result


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its waited-for children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def cache_psnr(cached: np.ndarray, dataset, files: list[Path], image_size: int) -> dict:
    """PSNR of each cache row against a full decode + fit of the upload's own file."""
    by_source = {path.relative_to(path.parents[1]).as_posix(): path for path in files}
    values = []
    for row, item in zip(cached, dataset.items, strict=True):
        full = plain_fit_image(by_source[item.source], image_size)
        values.append(psnr_db(np.asarray(row), full))
    finite = [value for value in values if value != float("inf")]
    return {"mean": float(np.mean(finite)) if finite else float("inf"),
            "min": min(values), "identical": f"{len(values) - len(finite)}/{len(values)}"}


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    error = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else float(10 * np.log10(255.0 ** 2 / error))


def folder_bytes(folder: Path, skip: str) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*")
               if path.is_file() and skip not in path.relative_to(folder).parts)


def environment_line() -> str:
    turbo = features.check_feature("libjpeg_turbo")
    return (f"CPU ({os.cpu_count()} cores, {platform.machine()}); Pillow {PIL.__version__}"
            f" (libjpeg-turbo {'yes' if turbo else 'no'}), Python {platform.python_version()}; "
            f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}")


def markdown(rows: list[dict]) -> str:
    lines = ["### Photo-sized JPEGs: import and cache against plain Pillow loops", "",
             f"Device: {environment_line()}  ",
             f"Command: `python -m core {' '.join(sys.argv[1:])}` (each step: the fastest of "
             f"{rows[0].get('runs', 1)} runs)", "",
             "| step | images | seconds | images/s | vs plain | CPU ms/image | value | detail |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [row["step"], row.get("images"), row.get("seconds"), row.get("images_per_s"),
                 row.get("vs_plain"), row.get("cpu_ms_per_image"), row.get("value"),
                 row.get("detail")]
        lines.append("| " + " | ".join(cell_text(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def cell_text(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)
