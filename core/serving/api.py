"""The HTTP API of one trained run (FastAPI; `python -m core serve`, docs/shipping.md).

    GET  /health      {"status": "ok", "run_id"}; open without a token (for health checks)
    GET  /v1/model    labels, input, metrics, temperature, the unknown rule
    POST /predict     multipart field `file`, repeatable; the JSON of `core predict --json`
    GET  /docs        OpenAPI (Swagger UI); /openapi.json is the schema

Every refusal is JSON `{"error": "…"}` with a 4xx code: 400 not an image or truncated, 401 a
missing or wrong bearer token, 413 a body, file or pixel count over the limit, 415 not
multipart or a part that says it is not an image. Model calls are serialised by one lock
(PyTorch on 2 cores gains nothing from running two at once, and a module is not guaranteed
thread-safe); reading and decoding uploads run outside it.
"""

from __future__ import annotations

import hmac
import socket
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from core.data.images import ImageRejected, decode_image
from core.serving.infer import MAX_PIXELS, LoadedModel

MAX_BODY_BYTES = 64 * 1024 * 1024  # one request, every file together
MAX_FILES = 64  # images in one request
TOP_K = 3
UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {"type": "object", "required": ["file"], "properties": {"file": {
        "type": "array", "items": {"type": "string", "format": "binary"},
        "description": "one or more images (JPEG, PNG, BMP, GIF, WebP, TIFF, PPM)"}}}}}}}


class ApiError(Exception):
    """A refusal: HTTP `status` and a sentence saying what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def create_app(loaded: LoadedModel, run: dict, *, token: str | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, max_files: int = MAX_FILES,
               max_pixels: int = MAX_PIXELS) -> FastAPI:
    """The app serving `loaded` (the run `run`); `token`: bearer token required by /v1/model
    and /predict."""
    app = FastAPI(title=f"CNN Studio: {run['name']}", version="1",
                  description=f"Image classifier {loaded.card['model']} over "
                              f"{len(loaded.classes)} classes (run {loaded.run_id}).")
    lock = threading.Lock()
    add_error_handlers(app)

    def check_token(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not value:
            raise ApiError(401, "This server needs a token: send the header "
                                "`Authorization: Bearer <token>`.")
        if not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, "The bearer token is wrong; ask whoever started the server.")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "run_id": loaded.run_id}

    @app.get("/v1/model")
    def model_info(request: Request) -> dict:
        check_token(request)
        return model_description(loaded, run)

    @app.post("/predict", openapi_extra=UPLOAD_SCHEMA)
    async def predict(request: Request, top_k: int = TOP_K) -> dict:
        check_token(request)
        if not 1 <= top_k <= len(loaded.classes):
            raise ApiError(400, f"top_k must be between 1 and {len(loaded.classes)}.")
        uploads = await read_uploads(request, max_body_bytes, max_files)
        images = [decode_upload(name, data, max_pixels, loaded.card["image_size"])
                  for name, data in uploads]

        def classify() -> list[dict]:
            with lock:
                return loaded.predict(images, top_k)

        rows = await run_in_threadpool(classify)
        return predictions_payload(loaded, [name for name, _ in uploads], rows)

    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every error, FastAPI's own included, as {"error": "…"}."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return JSONResponse({"error": error.message}, error.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail)}, error.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        return JSONResponse({"error": f"Bad request ({where})."}, 400)


async def read_uploads(request: Request, max_body_bytes: int,
                       max_files: int) -> list[tuple[str, bytes]]:
    """(file name, bytes) of every `file` part; the body is read at most to its cap."""
    kind = request.headers.get("content-type", "")
    if not kind.lower().startswith("multipart/form-data"):
        raise ApiError(415, "Send the images as multipart/form-data in the field `file` "
                            "(curl -F file=@photo.jpg …).")
    body = await capped_body(request, max_body_bytes)

    async def once() -> AsyncIterator[bytes]:
        yield body

    parser = MultiPartParser(request.headers, once(), max_files=max_files, max_fields=100)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        status = 413 if "too many" in str(error).lower() else 400
        raise ApiError(status, f"The multipart body could not be read ({error.message}); at "
                               f"most {max_files} files per request.") from None
    files = [part for part in form.getlist("file") if isinstance(part, UploadFile)]
    if not files:
        raise ApiError(400, "No image in the request: send each one as a file in the field "
                            "`file` (repeat the field for several).")
    uploads = []
    for part in files:
        name = part.filename or "upload"
        declared = (part.content_type or "application/octet-stream").split(";")[0].lower()
        if not (declared.startswith("image/") or declared == "application/octet-stream"):
            raise ApiError(415, f"{name} is sent as {declared}, not an image; send JPEG, PNG, "
                                "BMP, GIF, WebP, TIFF or PPM files.")
        uploads.append((name, await part.read()))
    return uploads


async def capped_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = ApiError(413, f"The request is over the limit of {limit / 2**20:.0f} MiB; send "
                              "fewer or smaller images per request.")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def decode_upload(name: str, data: bytes, max_pixels: int, draft_to: int | None = None):
    """A Pillow image (a JPEG at reduced size for the model's input, as the training cache
    decodes it), or 413 for a pixel bomb and 400 for anything else unreadable."""
    try:
        return decode_image(data, max_pixels, draft_to)
    except ImageRejected as error:
        bomb = "too many pixels" in error.reason or "over the limit" in error.reason
        status = 413 if bomb else 400
        raise ApiError(status, f"Cannot classify {name}: {error.reason}.") from None


def predictions_payload(loaded: LoadedModel, names: list[str], rows: list[dict]) -> dict:
    """What `python -m core predict --json` prints, with the upload names as `image`."""
    detector = loaded.detector
    return {"run_id": loaded.run_id, "temperature": loaded.temperature,
            "detector": None if detector is None else {"method": detector.method,
                                                       "threshold": detector.threshold},
            "predictions": [{"image": name} | row for name, row in zip(names, rows,
                                                                        strict=True)]}


def model_description(loaded: LoadedModel, run: dict) -> dict:
    card = loaded.card
    return {"run_id": loaded.run_id, "name": run["name"], "model": card["model"],
            "labels": list(loaded.classes),
            "input": {"image_size": card["image_size"], "channels": card["in_chans"],
                      "mean": card["mean"], "std": card["std"],
                      "resize": card.get("resize_mode") or "crop"},
            "metrics": {"best_val_acc": run.get("best_val_acc"), "test_acc": run.get("test_acc")},
            "temperature": loaded.temperature, "unknown": card.get("unknown"),
            "data": {"name": card.get("data"), "content_hash": card.get("content_hash")}}


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn with TCP_NODELAY, which accepted connections inherit.
    Without it a keep-alive client waits ~40 ms per request: the server writes the headers
    and the body separately, Nagle holds the body until the client's delayed ACK
    (measured: GET /health 45 ms → 0.4 ms on loopback, bench/RESULTS.md)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise ValueError(f"Cannot listen on {host}:{port} ({error.strerror}); is another "
                         "server using the port? Try --port with another number.") from None
    return sock
