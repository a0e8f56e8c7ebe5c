"""`bench formats`: one run's model in every format it ships as, measured alike.

For PyTorch eager, TorchScript, ONNX FP32, ONNX INT8 and ONNX FP16: accuracy on the test
split, p50/p90 latency of one image (batch 1, preprocessed tensor in, logits out), images/s
at batch 32, the file size, and the device. The fastest format (lowest p50 at batch 1) whose
accuracy is within WITHIN_POINTS of the FP32 eager model is marked `best`.

OpenVINO is left out: its wheel is ~50 MB for a gain on 2 CPU cores that ONNX Runtime
already mostly has; add it here if a deployment target needs it.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from core.serving import quantize
from core.serving.export import example_input, write_onnx, write_torchscript
from core.serving.infer import load_model
from core.store import Store
from core.training.run_files import weights_file
from core.workspace import runs_dir

WITHIN_POINTS = 0.5
THROUGHPUT_BATCH = 32
Runner = Callable[[np.ndarray], np.ndarray]


def bench_formats(run_ref: str, *, repeats: int = 100, warmup: int = 10,
                  throughput_batches: int = 20, threads: int | None = None,
                  store: Store | None = None) -> dict:
    """{run_id, split, images, device, threads, rows: [{format, accuracy, p50_ms, p90_ms,
    images_per_s, size_mb, device, best}]}, recorded on the run as summary["format_bench"].

    `threads`: intra-op threads for PyTorch and ONNX Runtime alike (default: PyTorch's
    current count). On a loaded machine 1 thread is often faster: a thread pool waits for
    its slowest thread, and a descheduled one costs a time slice per call."""
    store = store or Store()
    previous = torch.get_num_threads()
    threads = threads or previous
    torch.set_num_threads(threads)
    try:
        return measured(run_ref, repeats, warmup, throughput_batches, threads, store)
    finally:
        torch.set_num_threads(previous)


def measured(run_ref: str, repeats: int, warmup: int, throughput_batches: int, threads: int,
             store: Store) -> dict:
    loaded = load_model(run_ref, store)
    card = loaded.card
    test, split = quantize.split_images(card, "test"), "test"
    if test is None:
        test, split = quantize.split_images(card, "val"), "val"
    train = quantize.split_images(card, "train", quantize.CALIBRATION_IMAGES)
    if test is None or train is None:
        raise ValueError(f"bench formats measures accuracy on the run's dataset "
                         f"{card.get('data')!r}, which is gone or has changed; import it again.")
    x, labels = quantize.model_input(test[0], card), test[1]
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnn-formats-") as scratch:
        folder = Path(scratch)
        for name, (runner, size) in format_runners(loaded, folder, train[0], threads).items():
            rows.append({"format": name, **measure(runner, x, labels, repeats, warmup,
                                                   throughput_batches),
                         "size_mb": size / 1e6, "device": "cpu"})
    mark_best(rows)
    result = {"run_id": loaded.run_id, "split": split, "images": len(labels), "device": "cpu",
              "threads": threads, "cpus": os.cpu_count(),
              "repeats": repeats, "at": time.time(), "rows": rows}
    run = store.get_run(loaded.run_id)
    store.update_run(loaded.run_id, summary=(run["summary"] or {}) | {"format_bench": result})
    return result


def format_runners(loaded, folder: Path, calibration: np.ndarray, threads: int) -> dict:
    """format name → (runner: float32 N×C×H×W → logits, file size in bytes)."""
    example = example_input(loaded, batch=2)
    weights = weights_file(runs_dir() / loaded.run_id, "best")
    runners = {"PyTorch eager": (torch_runner(loaded.model), weights.stat().st_size)}
    script = folder / "model.pt"
    write_torchscript(loaded, example, script)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit is deprecated"
        module = torch.jit.load(str(script), map_location="cpu").eval()
    runners["TorchScript"] = (torch_runner(module), script.stat().st_size)
    fp32 = folder / "model.onnx"
    write_onnx(loaded, example, fp32)
    runners["ONNX FP32"] = (onnx_runner(fp32, threads), fp32.stat().st_size)
    int8 = folder / "model-int8.onnx"
    quantize.write_int8(fp32, int8, quantize.model_input(calibration, loaded.card))
    runners["ONNX INT8"] = (onnx_runner(int8, threads), int8.stat().st_size)
    fp16 = folder / "model-fp16.onnx"
    quantize.write_fp16(fp32, fp16)
    runners["ONNX FP16"] = (onnx_runner(fp16, threads), fp16.stat().st_size)
    return runners


def torch_runner(module: torch.nn.Module) -> Runner:
    def run(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).float().numpy()
    return run


def onnx_runner(path: Path, threads: int) -> Runner:
    session = quantize.session(path, threads)
    return lambda x: session.run(["logits"], {"input": x})[0]


def measure(runner: Runner, x: np.ndarray, labels: np.ndarray, repeats: int, warmup: int,
            throughput_batches: int) -> dict:
    tops = np.concatenate([runner(x[i:i + 256]).argmax(1) for i in range(0, len(x), 256)])
    one = x[:1]
    for _ in range(warmup):
        runner(one)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(one)
        times.append((time.perf_counter() - start) * 1000)
    batch = np.ascontiguousarray(np.resize(x, (THROUGHPUT_BATCH, *x.shape[1:])))
    runner(batch)
    start = time.perf_counter()
    for _ in range(throughput_batches):
        runner(batch)
    seconds = time.perf_counter() - start
    return {"accuracy": float((tops == labels).mean()),
            "p50_ms": float(np.percentile(times, 50)), "p90_ms": float(np.percentile(times, 90)),
            "images_per_s": THROUGHPUT_BATCH * throughput_batches / seconds}


def mark_best(rows: list[dict]) -> None:
    """`best` on the fastest row (p50 at batch 1) within WITHIN_POINTS of the eager model."""
    reference = rows[0]["accuracy"]
    near = [row for row in rows if (reference - row["accuracy"]) * 100 <= WITHIN_POINTS + 1e-9]
    fastest = min(near, key=lambda row: row["p50_ms"])
    for row in rows:
        row["best"] = row is fastest
