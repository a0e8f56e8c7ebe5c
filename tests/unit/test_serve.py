"""The HTTP API (core.serving.api) under FastAPI's TestClient: the answers of `core predict`,
every refusal's status code and JSON, the token, the loopback rule, and many clients at once."""

from __future__ import annotations

import io
import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.__main__ import main
from core.config import TrainConfig
from core.data import catalog
from core.data.demo import shapes_arrays
from core.runs.execute import execute_run
from core.runs.record import new_run
from core.serving.api import create_app
from core.serving.infer import load_model
from core.store import Store
from tests.upload_files import png

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def run_id(tmp_path_factory: pytest.TempPathFactory) -> str:
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("serve") / "workspace"
        patch.setenv("CNN_STUDIO_HOME", str(home))
        patch.delenv("CNN_STUDIO_DB", raising=False)
        patch.delenv("CNN_STUDIO_API_TOKEN", raising=False)
        catalog.add_demo("shapes", "shapes")
        store = Store()
        run = new_run(TrainConfig(data="shapes", model="tiny-cnn", epochs=1, device="cpu"),
                      store, status="running")
        assert execute_run(run, store)["status"] == "completed"
        yield run


def app_for(run_id: str, **options) -> TestClient:
    store = Store()
    return TestClient(create_app(load_model(run_id, store), store.get_run(run_id), **options))


@pytest.fixture(scope="module")
def client(run_id: str) -> TestClient:
    return app_for(run_id, max_body_bytes=2 * 2**20, max_files=8, max_pixels=1_000_000)


@pytest.fixture(scope="module")
def secured(run_id: str) -> TestClient:
    return app_for(run_id, token=TOKEN)


def shape_images(count: int, seed: int = 5) -> list[bytes]:
    images, _ = shapes_arrays(per_class=count, seed=seed)["all"]
    out = []
    for pixels in images[:count]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "PNG")
        out.append(buffer.getvalue())
    return out


def files(*items: tuple[str, bytes, str]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", item) for item in items]


def pixel_bomb(width: int = 20_000, height: int = 20_000) -> bytes:
    """A PNG whose header claims width×height pixels: tiny on disk, huge when decoded."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]
    return body["error"]


# ------------------------------------------------------------------------------ answers

def test_health_and_model_description(client, run_id) -> None:
    assert client.get("/health").json() == {"status": "ok", "run_id": run_id}
    model = client.get("/v1/model").json()
    assert model["labels"] == ["circle", "square", "triangle"]
    assert model["input"]["image_size"] == 32 and model["input"]["channels"] == 3
    assert set(model["metrics"]) == {"best_val_acc", "test_acc"}
    assert model["unknown"]["method"] in ("knn", "energy", "msp")


def test_predict_answers_as_core_predict_does(client, run_id, tmp_path, capsys) -> None:
    images = shape_images(3)
    paths = []
    for index, data in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        paths[-1].write_bytes(data)
    capsys.readouterr()
    assert main(["predict", "--run", run_id, "--json", *map(str, paths)]) == 0
    want = json.loads(capsys.readouterr().out)
    response = client.post("/predict", files=files(*[(p.name, p.read_bytes(), "image/png")
                                                     for p in paths]))
    assert response.status_code == 200, response.text
    got = response.json()
    assert [p["image"] for p in got["predictions"]] == [p.name for p in paths]
    for prediction in want["predictions"]:
        prediction["image"] = Path(prediction["image"]).name
    assert got == want  # the same model on the same batch: the same numbers


def test_top_k_is_a_query_parameter(client) -> None:
    response = client.post("/predict?top_k=1", files=files(("a.png", shape_images(1)[0],
                                                            "image/png")))
    assert [len(p["top"]) for p in response.json()["predictions"]] == [1]
    assert "top_k must be between 1 and 3" in error_of(
        client.post("/predict?top_k=9", files=files(("a.png", png(), "image/png"))), 400)


def test_openapi_docs_describe_the_upload(client) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert {"/health", "/v1/model", "/predict"} <= set(schema["paths"])


# ----------------------------------------------------------------------------- refusals

def test_not_an_image_is_400(client) -> None:
    message = error_of(client.post("/predict", files=files(("notes.png", b"hello there",
                                                            "image/png"))), 400)
    assert "notes.png" in message and "not an image" in message


def test_truncated_image_is_400(client) -> None:
    data = shape_images(1)[0]
    message = error_of(client.post("/predict", files=files(("cut.png", data[:len(data) // 2],
                                                            "image/png"))), 400)
    assert "cut.png" in message and "truncated" in message


def test_empty_file_is_400(client) -> None:
    assert "empty file" in error_of(client.post("/predict", files=files(
        ("empty.png", b"", "image/png"))), 400)


def test_no_file_field_is_400(client) -> None:
    message = error_of(client.post("/predict", files=[("image", ("a.png", png(), "image/png"))]),
                       400)
    assert "field `file`" in message


def test_pixel_bomb_is_413(client) -> None:
    message = error_of(client.post("/predict", files=files(("bomb.png", pixel_bomb(),
                                                            "image/png"))), 413)
    assert "bomb.png" in message and "pixels" in message


def test_too_large_body_is_413(client) -> None:
    big = np.random.default_rng(0).integers(0, 256, 3 * 2**20, dtype=np.uint8).tobytes()
    assert "over the limit of 2 MiB" in error_of(
        client.post("/predict", files=files(("big.png", big, "image/png"))), 413)


def test_too_many_files_is_413(client) -> None:
    many = files(*[(f"{i}.png", png(), "image/png") for i in range(9)])
    assert "at most 8 files" in error_of(client.post("/predict", files=many), 413)


def test_wrong_type_is_415(client) -> None:
    message = error_of(client.post("/predict", files=files(("a.txt", b"text", "text/plain"))),
                       415)
    assert "text/plain" in message
    assert "multipart/form-data" in error_of(
        client.post("/predict", content=png(), headers={"content-type": "image/png"}), 415)


def test_unknown_route_is_404_json(client) -> None:
    assert error_of(client.get("/nowhere"), 404)


def test_server_keeps_answering_after_refusals(client) -> None:
    for bad in (b"junk", pixel_bomb(), shape_images(1)[0][:50]):
        assert client.post("/predict", files=files(("x.png", bad, "image/png"))).is_client_error
    good = client.post("/predict", files=files(("ok.png", shape_images(1)[0], "image/png")))
    assert good.status_code == 200 and len(good.json()["predictions"]) == 1


# -------------------------------------------------------------------------------- token

def test_token_is_required_when_set(secured) -> None:
    upload = files(("a.png", png(), "image/png"))
    missing = secured.post("/predict", files=upload)
    assert "Authorization: Bearer" in error_of(missing, 401)
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "wrong" in error_of(secured.post("/predict", files=upload,
                                            headers={"Authorization": "Bearer nope"}), 401)
    assert error_of(secured.get("/v1/model", headers={"Authorization": "Basic abc"}), 401)
    ok = secured.post("/predict", files=upload, headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    assert secured.get("/health").status_code == 200  # health checks need no token


def test_binding_beyond_loopback_without_token_is_refused(run_id, capsys,
                                                          monkeypatch) -> None:
    monkeypatch.delenv("CNN_STUDIO_API_TOKEN", raising=False)
    assert main(["serve", "--run", run_id, "--host", "0.0.0.0"]) == 2
    message = capsys.readouterr().err
    assert "Refusing to listen on 0.0.0.0 without a token" in message and "--token" in message


def test_token_from_the_environment_allows_any_host(monkeypatch) -> None:
    from core.cli import build_parser
    from core.cli.serve import serve_token

    monkeypatch.setenv("CNN_STUDIO_API_TOKEN", "from-env")
    args = build_parser().parse_args(["serve", "--run", "x", "--host", "0.0.0.0"])
    assert serve_token(args) == "from-env"
    monkeypatch.delenv("CNN_STUDIO_API_TOKEN")
    assert serve_token(build_parser().parse_args(["serve", "--run", "x", "--host", "::1"])) \
        is None


# --------------------------------------------------------------------------- concurrency

def test_many_clients_at_once_get_the_answers_one_client_gets(client) -> None:
    images = shape_images(6, seed=11)

    def ask(index: int) -> dict:
        name = f"{index}.png"
        response = client.post("/predict", files=files((name, images[index % 6], "image/png")))
        assert response.status_code == 200, response.text
        return response.json()["predictions"][0] | {"image": index % 6}

    alone = [ask(i) for i in range(6)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(ask, range(48)))
    for answer in together:
        assert answer == alone[answer["image"]]


@pytest.mark.slow  # make test only; make test-fast leaves it out
def test_serve_command_answers_over_real_http(run_id, tmp_path) -> None:
    """`python -m core serve` in its own process: uvicorn on a loopback port, with a token."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = os.environ | {"CNN_STUDIO_API_TOKEN": TOKEN}
    server = subprocess.Popen([sys.executable, "-m", "core", "serve", "--run", run_id,
                               "--port", str(port)], env=env, stderr=subprocess.PIPE,
                              text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        upload = {"file": ("a.png", shape_images(1)[0], "image/png")}
        assert httpx.post(f"{url}/predict", files=upload, timeout=30).status_code == 401
        answer = httpx.post(f"{url}/predict", files=upload, timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 200 and answer.json()["run_id"] == run_id
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert f"serving run {run_id} at http://127.0.0.1:{port} with a bearer token" in err
