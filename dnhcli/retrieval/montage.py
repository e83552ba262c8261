"""A PNG montage of search results: each query beside its top-k stored images.

Stored images are read back from where their metadata says they came from (a prepared
dataset split, or an image file); an item whose source is gone shows as a grey tile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from dnhcli.data.dataset import PreparedDataset
from dnhcli.data.images import load_one
from dnhcli.errors import InputError
from dnhcli.retrieval.query import SearchResult

SCALE = 4                      # 28 px -> 112 px tiles, nearest neighbour: pixels stay visible
TILE = 28 * SCALE
LABEL_LINES = 3
LINE = 14
PAD = 8


def _font(size: int = 12) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


class StoredImages:
    """Reads stored images back as the model saw them (`side` x `side`), keeping datasets open
    across results; None where the source is gone or changed."""

    def __init__(self, side: int = 28) -> None:
        self.side = side
        self.datasets: dict[str, PreparedDataset] = {}

    def image(self, meta: dict[str, Any]) -> np.ndarray | None:
        try:
            if meta.get("dataset") is not None:
                path = meta["dataset"]
                if path not in self.datasets:
                    self.datasets[path] = PreparedDataset.open(path)
                return np.asarray(self.datasets[path].split(meta["split"]).images[meta["index"]])
            file = meta.get("file")
            if file is None:
                return None
            return load_one(Path(file), meta.get("index"), meta.get("frame"), self.side)
        except Exception:  # noqa: BLE001 - a missing or changed source only greys its tile
            return None


def _tile(image: np.ndarray | None) -> Image.Image:
    if image is None:
        return Image.new("L", (TILE, TILE), 128)
    return Image.fromarray(np.asarray(image, dtype=np.uint8)).resize((TILE, TILE), Image.Resampling.NEAREST)


def write_montage(result: SearchResult, out: Path) -> Path:
    """Draw one row per query (query first, then its results) and save a PNG."""
    if not result.queries:
        raise InputError("no query to draw")
    columns = 1 + max(len(q.results) for q in result.queries)
    cell_w, cell_h = TILE + PAD, TILE + LABEL_LINES * LINE + PAD
    canvas = Image.new("RGB", (columns * cell_w + PAD, len(result.queries) * cell_h + PAD), "white")
    draw, font, sources = ImageDraw.Draw(canvas), _font(), StoredImages()
    for row, query in enumerate(result.queries):
        y = PAD + row * cell_h
        cells: list[tuple[np.ndarray | None, list[str], tuple[int, int, int]]] = [
            (query.image, ["query", Path(query.query).name[-18:], ""], (0, 90, 200))]
        for hit in query.results:
            text = [f"#{hit['rank']}  d={hit['distance']}", str(hit.get("organ") or "")[:18],
                    str(hit.get("disease") or "")[:18]]
            cells.append((sources.image(hit), text, (0, 0, 0)))
        for col, (image, lines, colour) in enumerate(cells):
            x = PAD + col * cell_w
            canvas.paste(_tile(image).convert("RGB"), (x, y))
            if col == 0:
                draw.rectangle([x - 2, y - 2, x + TILE + 1, y + TILE + 1], outline=colour, width=2)
            for i, line in enumerate(lines):
                draw.text((x, y + TILE + 2 + i * LINE), line, fill=colour, font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
