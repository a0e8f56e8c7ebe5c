"""`bench serve`: the HTTP API under load. A real uvicorn server on a free loopback port,
then 1 and 8 clients (threads, one httpx connection each) posting one test image per
request: requests/s, p50 and p99 latency, and errors."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from core.serving import quantize
from core.serving.api import create_app, listening_socket
from core.serving.infer import load_model
from core.store import Store


def bench_serve(run_ref: str, clients: list[int], requests_per_client: int = 50,
                store: Store | None = None) -> list[dict]:
    """One row per client count: {clients, requests, errors, requests_per_s, p50_ms, p99_ms}."""
    import uvicorn

    store = store or Store()
    loaded = load_model(run_ref, store)
    app = create_app(loaded, store.get_run(loaded.run_id))
    images = sample_pngs(loaded.card, 16)
    sock = listening_socket("127.0.0.1", 0)  # as `serve` listens: TCP_NODELAY
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}/predict"
        return [load_row(url, images, count, requests_per_client) for count in clients]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def sample_pngs(card: dict, count: int) -> list[bytes]:
    """Test images of the run's dataset as PNG bytes (random pixels when it is gone)."""
    found = quantize.split_images(card, "test", count)
    if found is None:
        size, channels = card["image_size"], card["in_chans"]
        pixels = np.random.default_rng(0).integers(0, 256, (count, size, size, channels),
                                                   dtype=np.uint8)
    else:
        pixels = found[0]
    out = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def load_row(url: str, images: list[bytes], clients: int, per_client: int) -> dict:
    """`clients` threads, each warmed up by one untimed request, then started together."""
    import httpx

    barrier = threading.Barrier(clients)

    def client(index: int) -> tuple[list[float], int, float, float]:
        times, errors = [], 0
        with httpx.Client(timeout=60) as http:
            http.post(url, files={"file": ("warm.png", images[0], "image/png")})
            barrier.wait()
            began = time.perf_counter()
            for n in range(per_client):
                data = images[(index + n) % len(images)]
                start = time.perf_counter()
                response = http.post(url, files={"file": (f"{n}.png", data, "image/png")})
                times.append((time.perf_counter() - start) * 1000)
                errors += response.status_code != 200
        return times, errors, began, time.perf_counter()

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))
    seconds = max(r[3] for r in results) - min(r[2] for r in results)
    times = np.concatenate([np.asarray(r[0]) for r in results])
    return {"clients": clients, "requests": len(times), "errors": sum(r[1] for r in results),
            "requests_per_s": len(times) / seconds,
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}
