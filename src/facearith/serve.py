"""`facearith serve`: a local search service over a built pipeline, and the page that asks it.

The pipeline (the table, the features, the index, the network and PCA + LDA) is loaded once; each answer is the
one `facearith query` gives for the same question (facearith.query). One question is answered at a time: the
network and the index are not shared between threads, and two cores gain nothing from it. A request that cannot
be answered within `busy_wait_s` gets 429; a bad one gets a 4xx with a message, and the service goes on.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from facearith import query
from facearith.errors import QueryError

WEB = Path(__file__).parent / "web"  # the page: plain HTML, CSS and JavaScript, nothing fetched from elsewhere
THUMBNAIL_PX = 96


@dataclass(frozen=True)
class ServeSettings:
    max_upload_bytes: int  # an uploaded image larger than this is refused (413)
    busy_wait_s: float  # how long a request waits for the one before it (then 429)
    max_k: int  # the most results a question may ask for


class Refused(Exception):
    """A request the service answers with a 4xx and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Service:
    """The loaded pipeline and the answers to each kind of question, one at a time."""

    def __init__(self, pipe: query.Pipeline, settings: ServeSettings) -> None:
        self.pipe, self.settings = pipe, settings
        self.lock = threading.Lock()
        self.thumbnails: dict[int, bytes] = {}
        pipe.model()  # loaded now: the first image question should not pay for it

    def gallery(self) -> dict[str, Any]:
        """Every image (row, path, labels, split) and, per (person, expression), the training image that stands
        for it in the page's grid."""
        t = self.pipe.table
        images = [
            {"row": i, "path": r.path, "person": r.identity, "expression": r.attribute,
             "split": "train" if r.selected else "heldout"}
            for i, r in enumerate(t.itertuples())
        ]  # fmt: skip
        cells: dict[str, int] = {}  # "PERSON EXPRESSION": its first training image, else its first image
        for image in sorted(images, key=lambda i: i["split"] != "train"):
            cells.setdefault(f"{image['person']} {image['expression']}", image["row"])
        return {
            "persons": sorted(self.pipe.persons),
            "expressions": sorted(self.pipe.expressions),
            "cells": cells,
            "images": images,
        }

    def thumbnail(self, row: int) -> bytes:
        if row not in self.thumbnails:
            with Image.open(self.pipe.table.path.iloc[row]) as im:
                im = im.convert("L")
                im.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
                buf = io.BytesIO()
                im.save(buf, format="PNG")
            self.thumbnails[row] = buf.getvalue()
        return self.thumbnails[row]

    def answer(self, q: np.ndarray, described: dict, k: int, started: float) -> dict[str, Any]:
        results = self.pipe.search(q, k)
        return {"query": described, "results": results, "seconds": {"query": round(time.perf_counter() - started, 4)}}

    def compose(self, person: str, expression: str, k: int) -> dict[str, Any]:
        started = time.perf_counter()
        q, described = query.compose_query(self.pipe, person, expression)
        return self.answer(q, described, k, started)

    def transfer_row(self, row: int, plus: str, minus: str | None, k: int) -> dict[str, Any]:
        """A gallery image moved to `plus`, embedded from its file as `facearith query --image` does."""
        started = time.perf_counter()
        path = self.pipe.table.path.iloc[row]
        q, described = query.compose_query(self.pipe, image=path, plus=plus, minus=minus)
        return self.answer(q, described, k, started)

    def transfer_upload(self, data: bytes, name: str, plus: str, minus: str | None, k: int) -> dict[str, Any]:
        started = time.perf_counter()
        self.pipe.vector("expression", plus)
        try:
            with Image.open(io.BytesIO(data)) as im:
                img = np.asarray(im.convert("L"), dtype=np.uint8).copy()
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise Refused(400, f"{name or 'the upload'} is not an image Pillow can read ({exc})") from None
        q, described = query.transfer_query(self.pipe, self.pipe.features_of(img), plus, minus)
        return self.answer(q, {"image": name or "upload", **described}, k, started)

    def run(self, fn, *args) -> dict[str, Any]:
        """`fn(*args)` alone, after the request before it, or Refused(429) if that takes over busy_wait_s."""
        if not self.lock.acquire(timeout=self.settings.busy_wait_s):
            raise Refused(429, "busy: another question is being answered; ask again in a moment")
        try:
            return fn(*args)
        except QueryError as exc:
            raise Refused(400, str(exc)) from None
        finally:
            self.lock.release()


def _int(request: Request, name: str, default: int | None, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None and default is not None:
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise Refused(400, f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise Refused(400, f"{name} must be between {low} and {high}, got {value}")
    return value


def _text(request: Request, name: str, required: bool = True) -> str | None:
    value = request.query_params.get(name) or None
    if required and not value:
        raise Refused(400, f"give {name}")
    return value


def app(service: Service) -> Starlette:
    """The web application: the page at /, the JSON API under /api."""
    s, max_k = service, service.settings.max_k
    n = len(service.pipe.table)

    async def in_turn(fn, *args) -> JSONResponse:
        return JSONResponse(await run_in_threadpool(s.run, fn, *args))

    async def compose(request: Request) -> Response:
        k = _int(request, "k", 5, 1, max_k)
        return await in_turn(s.compose, _text(request, "person"), _text(request, "expression"), k)

    async def transfer(request: Request) -> Response:
        if request.method == "GET":
            row = _int(request, "row", None, 0, n - 1)
            k = _int(request, "k", 5, 1, max_k)
            return await in_turn(s.transfer_row, row, _text(request, "plus"), _text(request, "minus", False), k)
        size = request.headers.get("content-length")
        if size is None or not size.isdigit():
            raise Refused(411, "an upload needs its Content-Length")
        if int(size) > s.settings.max_upload_bytes + 4096:  # the form's own fields and boundaries beside the image
            raise Refused(413, f"the upload is {int(size)} bytes; the limit is {s.settings.max_upload_bytes}")
        form = await request.form(max_files=1, max_fields=4)
        image, plus, minus = form.get("image"), form.get("plus"), form.get("minus") or None
        if not isinstance(image, UploadFile):
            raise Refused(400, "send the image as the form field 'image' (multipart/form-data)")
        if not isinstance(plus, str) or not plus:
            raise Refused(400, "give plus (the expression to show)")
        try:
            k = int(form.get("k") or 5)
        except ValueError:
            raise Refused(400, f"k must be an integer, got {form.get('k')!r}") from None
        if not 1 <= k <= max_k:
            raise Refused(400, f"k must be between 1 and {max_k}, got {k}")
        data = await image.read(s.settings.max_upload_bytes + 1)
        if len(data) > s.settings.max_upload_bytes:
            raise Refused(413, f"the image is over {s.settings.max_upload_bytes} bytes")
        return await in_turn(s.transfer_upload, data, image.filename or "", plus, minus, k)

    async def gallery(request: Request) -> Response:
        return JSONResponse(s.gallery())

    async def thumbnail(request: Request) -> Response:
        row = _int(request, "row", None, 0, n - 1)
        data = await run_in_threadpool(s.thumbnail, row)
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=3600"})

    async def page(request: Request) -> Response:
        return FileResponse(WEB / "index.html")

    async def refused(request: Request, exc: Exception) -> Response:
        if isinstance(exc, Refused):
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [
        Route("/", page),
        Route("/api/gallery", gallery),
        Route("/api/compose", compose),
        Route("/api/transfer", transfer, methods=["GET", "POST"]),
        Route("/api/thumbnail", thumbnail),
        Mount("/static", StaticFiles(directory=WEB), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={Refused: refused, HTTPException: refused})


def serve(args) -> None:
    """Load the pipeline in args.root, then answer on args.host:args.port (0: a free port) until stopped."""
    pipe = query.Pipeline.open(args.root)
    settings = ServeSettings(int(args.max_upload_mb * 1024 * 1024), args.busy_wait_s, args.max_k)
    service = Service(pipe, settings)
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        sock.close()
        raise QueryError(f"cannot listen on {args.host}:{args.port} ({exc.strerror}); choose another --port") from None
    sock.listen(128)  # connections queue from now on, before the server's loop accepts them
    host, port = sock.getsockname()[:2]
    config = uvicorn.Config(app(service), log_level="warning", access_log=False)
    print(f"facearith serve: {len(pipe.table)} images from {Path(args.root).resolve()}", flush=True)
    print(f"facearith serve: listening on http://{host}:{port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.Server(config).run(sockets=[sock])
