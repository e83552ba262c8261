"""The HTTP API and web page of `dnh serve` (FastAPI; OpenAPI at /docs).

Routes: `GET /` (the page), `GET /health`, `POST /search` (one image: the JSON of one query
of `dnh search --json`), `POST /search/batch`, `GET /items/{id}`,
`GET /items/{id}/thumbnail.png`, `POST /reload`. Every `DnhError` becomes a 4xx answer
`{"error": ..., "hint": ...}`; nothing else reaches the client as a traceback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dnhcli import __version__
from dnhcli.data.images import decode_upload
from dnhcli.errors import DataError, DnhError, InputError, ModelError
from dnhcli.index.rerank import DEFAULT_OVERSAMPLE
from dnhcli.serve.service import NotFound, SearchService, ServeConfig, TooLarge, TooSlow
from dnhcli.serve.uploads import file_name, image_parts, read_body, split_parts
from dnhcli.stores.locate import shown

CONFIG_ENV = "DNH_SERVE_CONFIG"  # the settings handed to each worker process (JSON)
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
_UPLOAD_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"image": {"type": "string", "format": "binary"}},
    "required": ["image"]}}}}}
_BATCH_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "properties": {"images": {"type": "array", "items": {
        "type": "string", "format": "binary"}}}, "required": ["images"]}}}}}


def _status(exc: DnhError) -> int:
    for kind, code in ((NotFound, 404), (TooLarge, 413), (TooSlow, 408), (InputError, 400),
                       (ModelError, 409), (DataError, 409)):
        if isinstance(exc, kind):
            return code
    return 400


def _error(status: int, message: str, hint: str | None = None) -> JSONResponse:
    headers = {"Connection": "close"} if status in (408, 413) else None
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


def create_app(config: ServeConfig | None = None, service: SearchService | None = None) -> FastAPI:
    """The app for one process: `service` if given, else one made from `config` at startup
    (or from the DNH_SERVE_CONFIG environment variable, for uvicorn's worker processes)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        made = None
        if app.state.service is None:
            settings = config or ServeConfig.from_env(json.loads(os.environ[CONFIG_ENV]))
            app.state.service = made = await run_in_threadpool(SearchService, settings)
        yield
        if made is not None:
            made.close()

    app = FastAPI(title="dnh", version=__version__, lifespan=lifespan,
                  description="Content-based medical image retrieval with deep neural hashing.")
    app.state.service = service

    def svc() -> SearchService:
        return app.state.service  # type: ignore[no-any-return]

    @app.exception_handler(DnhError)
    async def dnh_error(request: Request, exc: DnhError) -> JSONResponse:
        return _error(_status(exc), exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(400, f"{where}: {first.get('msg', 'invalid value')}",
                      "see /docs for the parameters each route takes")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), "see /docs for the routes")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error ({type(exc).__name__})",
                             "hint": "the server log has the details"}, status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(_asset("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:
            raise NotFound(f"no file {name[:60]!r}")
        return Response(_asset(name), media_type=STATIC[name])

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Whether the service is up: items, bits, the model's fingerprint and the snapshot."""
        return svc().health()

    @app.post("/search", openapi_extra=_UPLOAD_DOC)
    async def search_one(request: Request, k: int = 10, radius: int | None = None,
                         tie_break: str = "insertion-order", preview: bool = False, rerank: bool = True,
                         oversample: int = DEFAULT_OVERSAMPLE) -> dict[str, Any]:
        """One image (multipart field `image`, or the raw body) -> its top k: `{"query", "results":
        [{"rank", "distance", "score", "id", "source", "organ", "disease", ...}]}`; two-stage (score:
        the re-rank cosine) unless `rerank=false`, a radius, or a database without vectors."""
        svc().check_query(k, radius, tie_break, oversample)
        files = await _uploads(request, ("image",), 1)
        images, names = await run_in_threadpool(_decode, files, svc().backend.input_side)
        if len(images) > 1:
            raise InputError(f"{files[0][0]} holds {len(images)} images",
                             hint="send a file of several images to POST /search/batch")
        out = (await asyncio.wrap_future(svc().submit(images, names, k, radius, tie_break, rerank,
                                                      oversample)))[0]
        if preview:
            out["preview"] = _png_data_url(images[0])
        return out

    @app.post("/search/batch", openapi_extra=_BATCH_DOC)
    async def search_batch(request: Request, k: int = 10, radius: int | None = None,
                           tie_break: str = "insertion-order", rerank: bool = True,
                           oversample: int = DEFAULT_OVERSAMPLE) -> dict[str, Any]:
        """Many images (multipart fields `images`; stacks and multi-frame files give one query
        per image) -> the JSON of `dnh search --json`."""
        began = time.perf_counter()
        service = svc()
        service.check_query(k, radius, tie_break, oversample)
        files = await _uploads(request, ("images", "image"), service.config.max_images)
        images, names = await run_in_threadpool(_decode, files, service.backend.input_side)
        if len(images) > service.config.max_images:
            raise InputError(f"the files hold {len(images)} images, at most {service.config.max_images}",
                             hint="split them over several requests")
        queries = await asyncio.wrap_future(service.submit(images, names, k, radius, tie_break, rerank,
                                                           oversample))
        two_stage = rerank and radius is None and service.health()["rerank"]
        return {"db": shown(service.config.db), "bits": service.backend.bits, "k": k, "radius": radius,
                "tie_break": tie_break, "rerank": two_stage, "oversample": oversample, "queries": queries,
                "seconds": round(time.perf_counter() - began, 6)}

    @app.get("/items/{item}")
    def item(item: int) -> dict[str, Any]:
        """An item's stored metadata."""
        return svc().item(item)

    @app.get("/items/{item}/thumbnail.png", response_class=Response)
    def thumbnail(item: int, size: int = 112) -> Response:
        """The item's image as the model saw it, `size` pixels square, where its source can
        still be read (404 otherwise)."""
        return Response(svc().thumbnail(item, size), media_type="image/png",
                        headers={"Cache-Control": "max-age=60"})

    @app.post("/reload")
    async def reload() -> dict[str, Any]:
        """Open the database again now (it is also reopened by itself when it changes)."""
        changed = await run_in_threadpool(svc().reload, True)
        return {"reloaded": changed, **svc().health()}

    async def _uploads(request: Request, fields: tuple[str, ...], most: int) -> list[tuple[str, bytes]]:
        service = svc()
        body = await read_body(request, service.config.max_upload, service.config.upload_timeout)
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/"):
            return image_parts(split_parts(body, content_type), fields, most)
        return [(file_name(request.query_params.get("name")), body)]  # the raw body is the file

    return app


def _decode(files: list[tuple[str, bytes]], side: int) -> tuple[np.ndarray, list[str]]:
    decoded = [decode_upload(data, name, side) for name, data in files]
    return np.concatenate([d[0] for d in decoded]), [n for d in decoded for n in d[1]]


def _png_data_url(image: np.ndarray) -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _asset(name: str) -> bytes:
    return (resources.files("dnhcli.serve") / "page" / name).read_bytes()


def app_from_environment() -> FastAPI:
    """uvicorn's factory for worker processes (settings in DNH_SERVE_CONFIG)."""
    return create_app()
