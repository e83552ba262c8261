"""Request bodies for `dnh serve`: read whole into memory within a size limit and a time limit,
then split into multipart parts (python-multipart's parser, fed from memory). Nothing the
client sends is written to disk: Starlette's own form parsing spools files over 1 MB to
temporary files, so it is not used."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from dnhcli.errors import InputError
from dnhcli.serve.service import TooLarge, TooSlow

MAX_PARTS = 256
_SAFE_NAME = re.compile(r"[^\w.\-\[\] ]+")


@dataclass
class Part:
    field: str
    filename: str | None
    data: bytes


async def read_body(request: Any, limit: int, timeout: float) -> bytes:
    """The request body, refused (TooLarge) past `limit` bytes, as declared or as sent, and
    (TooSlow) when the client pauses more than `timeout` seconds between chunks."""
    from starlette.requests import ClientDisconnect

    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise InputError(f"invalid Content-Length header {declared[:40]!r}")
        if int(declared) > limit:
            raise TooLarge(f"the request body of {int(declared):,} bytes is over the limit of {limit:,}",
                           hint="send a smaller image, or start the server with a larger --max-upload-mb")
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise TooSlow(f"the request body did not arrive within {timeout:g} seconds",
                          hint="send the whole file at once") from None
        except ClientDisconnect:
            raise InputError("the client closed the connection before sending the whole body") from None
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the request body is over the limit of {limit:,} bytes",
                           hint="send a smaller image, or start the server with a larger --max-upload-mb")
        chunks.append(chunk)
    return b"".join(chunks)


def file_name(raw: str | None, fallback: str = "upload") -> str:
    """A client's file name made safe to show and to echo back: no folders, no control or markup
    characters, at most 120 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_NAME.sub("_", name).strip(" .")[:120]
    return name or fallback


def split_parts(body: bytes, content_type: str) -> list[Part]:
    """The parts of a multipart/form-data body; InputError for anything malformed."""
    from python_multipart.multipart import MultipartParseError, MultipartParser, parse_options_header

    if not body:
        raise InputError("the request has no body",
                         hint="send the image as a multipart file field (curl -F image=@scan.png)")
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InputError("the body is not multipart/form-data with a boundary",
                         hint="send the image as a multipart file field (curl -F image=@scan.png)")
    parts: list[Part] = []
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "data": [], "ended": False}

    def on_part_begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise InputError(f"more than {MAX_PARTS} parts in one request")
        state.update(headers={}, field=b"", value=b"", data=[])

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        state["data"].append(data[start:end])

    def on_part_end() -> None:
        disposition, options = parse_options_header(state["headers"].get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise InputError("a multipart part has no Content-Disposition form-data name")
        filename = options.get(b"filename")
        parts.append(Part(options[b"name"].decode("utf-8", "replace"),
                          filename.decode("utf-8", "replace") if filename is not None else None,
                          b"".join(state["data"])))

    def on_end() -> None:
        state["ended"] = True

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_part_data": on_part_data, "on_part_end": on_part_end, "on_end": on_end}
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise InputError(f"malformed multipart body ({str(exc).splitlines()[0][:120]})",
                         hint="send the image as a multipart file field (curl -F image=@scan.png)") from None
    if not state["ended"]:
        raise InputError("the multipart body ends before its closing boundary",
                         hint="the upload was cut short: send the whole file")
    return parts


def image_parts(parts: list[Part], fields: tuple[str, ...], most: int) -> list[tuple[str, bytes]]:
    """(safe name, bytes) of the file parts named one of `fields`; InputError if there are none
    or more than `most`."""
    files = [(file_name(p.filename, f"{p.field}-{i}"), p.data)
             for i, p in enumerate(parts) if p.field in fields]
    if not files:
        named = sorted({p.field for p in parts})
        raise InputError(f"no file field {' or '.join(repr(f) for f in fields)} in the request"
                         + (f" (it has {', '.join(repr(n[:40]) for n in named[:5])})" if named else ""),
                         hint=f"send the image as the multipart field {fields[0]!r}: "
                              f"curl -F {fields[0]}=@scan.png")
    if len(files) > most:
        raise InputError(f"{len(files)} images in one request, at most {most}",
                         hint="split them over several requests" if most > 1
                         else "send several images to POST /search/batch")
    return files
