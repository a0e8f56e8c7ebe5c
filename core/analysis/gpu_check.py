"""`python -m core bench gpu`: every CUDA path the product has, then the GPU targets, in one
markdown table to paste into bench/RESULTS.md.

Each section trains or runs the product's own code (core.training.fit, the runs' out-of-memory
retry, export, Grad-CAM) on a small built-in dataset in a scratch workspace. A section that
needs CUDA reports "skipped: no CUDA" where there is none; one whose package is missing reports
which (a GPU machine's bare Python may lack SQLAlchemy: the sections that record a run need it,
the others run without it). `--smoke --device cpu` runs every section tiny, in about a minute,
so CI keeps the whole check working on machines without a GPU.

Product modules are imported inside the sections (and torch only once the check starts), so a
package missing for one section costs that section alone.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from core.training.hooks import Hooks  # no torch

OK, SKIPPED, FAILED = "ok", "skipped", "failed"
NO_CUDA = "skipped: no CUDA"
SMOKE_PER_CLASS = 24  # training images per class of the smoke run's shapes


@dataclass
class Context:
    """What every section shares: the device, the scale, the scratch workspace."""
    device: object  # torch.device
    smoke: bool  # tiny sizes: checks that each path works, measures nothing
    quick: bool  # the targets with fewer steps
    home: Path
    fm_dir: Path | None
    runs: dict = field(default_factory=dict)  # run ids sections leave for later ones

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def device_name(self) -> str:
        return "cuda" if self.cuda else "cpu"


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[Context], str]  # returns the detail line; raises to fail
    needs_cuda: bool = False


def run_section(section: Section, ctx: Context) -> dict:
    """One row: {section, status, detail, seconds}. Never raises: a failure is a row."""
    start = time.perf_counter()
    if section.needs_cuda and not ctx.cuda:
        return {"section": section.name, "status": NO_CUDA, "detail": "", "seconds": 0.0}
    try:
        detail, status = section.run(ctx), OK
    except ImportError as error:
        detail, status = (f"missing package {error.name or error}: install it (or carry its "
                          "wheel) to run this section"), SKIPPED
    except Exception as error:  # noqa: BLE001  (the check reports every path, failed or not)
        detail, status = f"{error.__class__.__name__}: {str(error)[:300]}", FAILED
    return {"section": section.name, "status": status, "detail": detail,
            "seconds": round(time.perf_counter() - start, 1)}


# --------------------------------------------------------------------------------- sections

def small_config(ctx: Context, **overrides):
    from core.config import TrainConfig

    settings = {"data": "shapes", "model": "tiny-bn" if ctx.smoke else "resnet9-small",
                "epochs": 1, "batch_size": 16 if ctx.smoke else 32, "device": ctx.device_name,
                "seed": 0, "flip": True, "pad_crop": 2}
    return TrainConfig(**(settings | overrides))


def fit_once(ctx: Context, name: str, **overrides) -> dict:
    from core.training.loop import fit

    result = fit(small_config(ctx, **overrides), ctx.home / "scratch" / name)
    if result["status"] != "completed" or not math.isfinite(result["best_val_acc"] or math.nan):
        raise RuntimeError(f"the run ended {result['status']}: {result.get('error')}")
    return result


def bf16_autocast(ctx: Context) -> str:
    result = fit_once(ctx, "bf16", precision="bf16")
    where = "CUDA" if ctx.cuda else "CPU autocast"
    return (f"{where}: 1 epoch in bf16, val acc {result['best_val_acc']:.3f}, "
            f"{result['train_images_per_s']:.0f} img/s")


def channels_last(ctx: Context) -> str:
    import torch

    from core.data.loader import to_model_input
    from models import create_model

    torch.manual_seed(0)
    model = create_model("resnet9-small", in_chans=3, num_classes=3, image_size=32)
    model = model.to(ctx.device, memory_format=torch.channels_last).eval()
    images = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8, device=ctx.device)
    mean = torch.full((3,), 0.5, device=ctx.device)
    x = to_model_input(images, mean, torch.full((3,), 0.25, device=ctx.device))
    weight = next(p for p in model.parameters() if p.ndim == 4)
    if not (x.is_contiguous(memory_format=torch.channels_last)
            and weight.is_contiguous(memory_format=torch.channels_last)):
        raise RuntimeError("the input or the conv weights are not channels_last")
    with torch.no_grad():
        nhwc, nchw = model(x), model(x.contiguous())
    diff = float((nhwc - nchw).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f"channels_last and NCHW outputs differ by {diff:.2e}")
    return f"input and weights channels_last; outputs equal NCHW's within {diff:.1e}"


def compiled_cuda_graphs(ctx: Context) -> str:
    result = fit_once(ctx, "compile", compile=True, epochs=2)
    if result["compile_mode"] != "reduce-overhead":
        raise RuntimeError(f"trained in mode {result['compile_mode']!r}, not CUDA graphs "
                           "(reduce-overhead): compiling fell back")
    return (f"torch.compile mode reduce-overhead (CUDA graphs), "
            f"{result['train_images_per_s']:.0f} img/s after the first epoch")


def auto_batch_size(ctx: Context) -> str:
    from core.config import AUTO_BATCH

    result = fit_once(ctx, "auto-batch", batch_size=AUTO_BATCH)
    how = "probed on the GPU" if ctx.cuda else "no probe off a GPU"
    return f"auto batch size {result['batch_size']} ({how})"


class OutOfMemoryOnce(Hooks):
    """A hook that raises the out-of-memory error once, at the first step (CPU: simulated)."""

    def __init__(self) -> None:
        self.raised = False

    def on_step(self, step: int, epoch: float, metrics: dict) -> None:
        import torch

        if not self.raised:
            self.raised = True
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")


@contextmanager
def memory_cap(ctx: Context, gib: float):
    """Cap this process's CUDA allocator at `gib` (a real out-of-memory error, cheaply)."""
    import torch

    total = torch.cuda.get_device_properties(ctx.device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, gib * 2**30 / total), ctx.device)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, ctx.device)
        torch.cuda.empty_cache()


def oom_retry(ctx: Context) -> str:
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    store = Store()
    if ctx.cuda:  # resnet18 at 160 px, 240 images a step: far more than a 1 GiB cap
        config = small_config(ctx, model="resnet18", image_size=160, batch_size=256)
        with memory_cap(ctx, 1.0):
            result = execute_run(new_run(config, store, status="running"), store)
        how = "a real CUDA out-of-memory error under a 1 GiB cap"
    else:
        config = small_config(ctx, model="tiny-cnn", batch_size=64)
        result = execute_run(new_run(config, store, status="running"), store,
                             [OutOfMemoryOnce()])
        how = "simulated on the CPU (CUDA raises the real one)"
    notes = result.get("notes") or []
    if result["status"] != "completed" or not notes:
        raise RuntimeError(f"status {result['status']}, notes {notes}: {result.get('error')}")
    ctx.runs["oom"] = result["run_id"]
    return f"{'; '.join(notes)} ({how}); completed at batch {result['batch_size']}"


def pinned_memory(ctx: Context) -> str:
    import core.data.loader as loader

    real = loader.fits_on_device
    loader.fits_on_device = lambda nbytes, device: False  # as if the dataset were too large
    try:
        import numpy as np

        split = loader.DeviceSplit(np.zeros((64, 32, 32, 3), np.uint8), np.zeros(64), ctx.device)
        if not split.images.is_pinned():
            raise RuntimeError("a split that does not fit was not kept in pinned host memory")
        images, _ = next(split.batches(16, shuffle=True))
        if images.device.type != "cuda":
            raise RuntimeError("batches from pinned memory did not reach the GPU")
        result = fit_once(ctx, "pinned")
    finally:
        loader.fits_on_device = real
    return (f"splits kept in pinned host memory, batches copied to the GPU: "
            f"{result['train_images_per_s']:.0f} img/s")


def torchrun_ranks(ctx: Context) -> str:
    """torchrun on one GPU (NCCL, SyncBatchNorm), or two CPU ranks over gloo."""
    ranks = 1 if ctx.cuda else 2
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}", "-m", "core.analysis.gpu_rank"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"PYTHONUNBUFFERED": "1"})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"torchrun exited {done.returncode}: {done.stderr[-400:]}")
    report = json.loads(lines[-1])
    return (f"{report['world_size']} rank(s) over {report['backend']}, SyncBatchNorm "
            f"{'on' if report['sync_batchnorm'] else 'off (CUDA only)'}, "
            f"{report['steps']} DDP steps, loss {report['loss']:.3f}")


def trained_run(ctx: Context) -> str:
    """A run recorded in the store (oom's, or a fresh one) for export and Grad-CAM."""
    if "oom" in ctx.runs:
        return ctx.runs["oom"]
    from core.runs.execute import execute_run
    from core.runs.record import new_run
    from core.store import Store

    store = Store()
    result = execute_run(new_run(small_config(ctx), store, status="running"), store)
    ctx.runs["oom"] = result["run_id"]
    return result["run_id"]


def onnx_parity(ctx: Context) -> str:
    import numpy as np
    import torch

    from core.serving.export import export_run, onnx_runner, parity_inputs
    from core.serving.infer import load_model

    run_id = trained_run(ctx)
    result = export_run(run_id, "onnx", ctx.home / "exports" / "model.onnx")
    if not result["parity"]["passed"]:
        raise RuntimeError(f"ONNX Runtime differs from PyTorch (CPU): {result['parity']}")
    loaded = load_model(run_id, device=ctx.device_name)  # the model as trained, on the device
    x, _ = parity_inputs(loaded)
    with torch.no_grad():
        on_device = loaded.model(torch.from_numpy(x).to(ctx.device)).float().cpu().numpy()
    exported = onnx_runner(loaded, Path(result["path"]))(x)
    diff = float(np.abs(on_device - exported).max())
    if diff > result["parity"]["tolerance"]:
        raise RuntimeError(f"ONNX Runtime differs from the {ctx.device_name} model by {diff:.2e}")
    return (f"{result['exporter']} exporter; max |diff| vs PyTorch CPU "
            f"{result['parity']['max_abs_diff']:.1e}, vs the {ctx.device_name} model {diff:.1e}")


def grad_cam_on_device(ctx: Context) -> str:
    import numpy as np
    from PIL import Image

    from core.analysis.explain import grad_cam
    from core.serving.infer import load_model

    loaded = load_model(trained_run(ctx), device=ctx.device_name)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8))
    cam = grad_cam(loaded, image)
    if cam.shape != (32, 32) or not (0.0 <= cam.min() <= cam.max() <= 1.0):
        raise RuntimeError(f"a heat map of shape {cam.shape}, range {cam.min()}–{cam.max()}")
    return f"heat map {cam.shape[0]}×{cam.shape[1]} on {ctx.device_name}, peak at 1.0"


SECTIONS = (
    Section("bf16 autocast", bf16_autocast),
    Section("channels_last", channels_last),
    Section("torch.compile + CUDA graphs", compiled_cuda_graphs, needs_cuda=True),
    Section("auto batch size", auto_batch_size),
    Section("out-of-memory retry", oom_retry),
    Section("pinned-memory path", pinned_memory, needs_cuda=True),
    Section("torchrun (NCCL, SyncBatchNorm)", torchrun_ranks),
    Section("ONNX export parity", onnx_parity),
    Section("Grad-CAM", grad_cam_on_device),
)


# ------------------------------------------------------------------------------ the check

def prepare_workspace(ctx: Context) -> None:
    """The scratch workspace's datasets: shapes always, Fashion-MNIST when its files exist."""
    from core.data.demo import create_demo

    os.environ["CNN_STUDIO_HOME"] = str(ctx.home)
    os.environ.pop("CNN_STUDIO_DB", None)  # the scratch workspace's own SQLite store
    create_demo("shapes", "shapes", per_class=SMOKE_PER_CLASS if ctx.smoke else None)
