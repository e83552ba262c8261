"""Where the labels of a folder of images come from: exactly one source.

- `folders` (`--layout class` or `group/class`): `DIR/<class>/...` or `DIR/<group>/<class>/...`
  (the group is the organ, the class the disease, as MedMNIST's Organ_disease classes);
  deeper folders below the class are allowed (e.g. one per patient).
- `table` (`--labels FILE.csv|.tsv`): a path-or-key column, a class column, and optional group
  and patient columns.
- `dicom-tags` (`--label-tag KEYWORD[,GROUPKEYWORD]`): DICOM attributes of each file's header.
- `none`: an unlabelled set.

The default (`--layout auto`, no table, no tag) is `folders` with one level when every image
lies in a sub-folder of DIR, and `none` when every image lies in DIR itself. A PACS export
(DIR/<patient>/<study>/...) is not labelled by its folders: give it `--layout none`.
A patient is known from the table's patient column, else from a DICOM file's PatientID.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnhcli.data.sources.walk import Item
from dnhcli.errors import InputError
from dnhcli.manifest import file_digest

LAYOUTS = ("auto", "class", "group/class", "none")
ROLES = {"path": ("path", "file", "filename", "file_name", "key", "image"),
         "class": ("label", "class", "diagnosis", "disease"),
         "group": ("group", "organ"),
         "patient": ("patient", "patient_id", "patientid")}
PATIENT_TAG = "PatientID"


@dataclass
class Labels:
    """Per item: its (group, class) or None with the reason, and its patient (or None); how the
    labels were found, for the manifest (no patient value ever goes there)."""

    source: str
    pairs: list[tuple[str, str] | None]
    reasons: list[str]
    patients: list[str | None]
    grouped: bool = False
    described: dict[str, Any] = field(default_factory=dict)

    @property
    def labelled(self) -> bool:
        return self.source != "none"


def parse_columns(text: str | None) -> dict[str, str]:
    """'path=file,class=dx' -> {'path': 'file', 'class': 'dx'}."""
    named: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        role, _, column = part.partition("=")
        role = role.strip().lower()
        if role not in ROLES or not column.strip():
            raise InputError(f"malformed --label-columns part {part.strip()!r}",
                             hint="give role=column pairs, roles: " + ", ".join(ROLES))
        named[role] = column.strip()
    return named


def find_labels(items: Sequence[Item], root: Path, layout: str = "auto", table: Path | None = None,
                columns: str | None = None, tags: Sequence[str] = ()) -> Labels:
    """The labels of `items` from the one source the options choose (see the module doc)."""
    if layout not in LAYOUTS:
        raise InputError(f"--layout takes {', '.join(LAYOUTS)}, got {layout!r}")
    chosen = [name for name, given in (("--labels", table is not None), ("--label-tag", bool(tags)),
                                       (f"--layout {layout}", layout != "auto")) if given]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} exclude each other", hint="choose one source of labels")
    if columns and table is None:
        raise InputError("--label-columns names the columns of a --labels table", hint="add --labels FILE")
    dicom_patients = [item.tags.get(PATIENT_TAG) or None for item in items]
    if table is not None:
        return _table(items, root, table, parse_columns(columns), dicom_patients)
    if tags:
        return _tags(items, tags, dicom_patients)
    if layout == "auto":
        layout = "class" if items and all("/" in item.relative for item in items) else "none"
    if layout == "none":
        return Labels("none", [None] * len(items), [""] * len(items), dicom_patients, described={})
    return _folders(items, root, layout, dicom_patients)


def _folders(items: Sequence[Item], root: Path, layout: str, patients: list[str | None]) -> Labels:
    depth = layout.count("/") + 1
    pairs: list[tuple[str, str] | None] = []
    reasons = []
    for item in items:
        parts = item.relative.split("/")
        if len(parts) <= depth:
            pairs.append(None)
            reasons.append(f"not in a {layout.replace('/', ' and a ')} folder of {root} (--layout {layout})")
        else:
            pairs.append((parts[0], parts[1]) if depth == 2 else ("", parts[0]))
            reasons.append("")
    return Labels("folders", pairs, reasons, patients, depth == 2, {"layout": layout})


def _tags(items: Sequence[Item], tags: Sequence[str], patients: list[str | None]) -> Labels:
    if len(tags) > 2:
        raise InputError(f"--label-tag takes one or two keywords (class, group), got {len(tags)}")
    klass, group = tags[0], (tags[1] if len(tags) == 2 else None)
    pairs: list[tuple[str, str] | None] = []
    reasons = []
    for item in items:
        if not item.tags:
            pairs.append(None)
            reasons.append(f"not a DICOM file, so it has no {klass}")
            continue
        missing = [word for word in (klass, group) if word and not item.tags.get(word)]
        pairs.append(None if missing else (item.tags[group] if group else "", item.tags[klass]))
        reasons.append(f"its DICOM header has no {' or '.join(missing)}" if missing else "")
    return Labels("dicom-tags", pairs, reasons, patients, group is not None,
                  {"class_tag": klass, "group_tag": group})


def _read_table(table: Path) -> tuple[list[str], list[list[str]]]:
    if not table.is_file():
        raise InputError(f"--labels {table}: no such file")
    try:
        with open(table, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle, delimiter="\t" if table.suffix.lower() == ".tsv" else ","))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--labels {table}: not a readable CSV/TSV table ({exc})") from None
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        raise InputError(f"--labels {table}: needs a header row and at least one row")
    return [cell.strip() for cell in rows[0]], rows[1:]


def _column(header: list[str], role: str, named: dict[str, str], table: Path, required: bool) -> int | None:
    lower = [h.lower() for h in header]
    if role in named:
        if named[role].lower() not in lower:
            raise InputError(f"--labels {table} has no column {named[role]!r} (columns: {', '.join(header)})",
                             hint="name the columns with --label-columns path=...,class=...")
        return lower.index(named[role].lower())
    found = next((lower.index(name) for name in ROLES[role] if name in lower), None)
    if found is None and required:
        raise InputError(f"--labels {table} has no {role} column (columns: {', '.join(header)})",
                         hint=f"name it with --label-columns {role}=COLUMN, or call it {ROLES[role][0]!r}")
    return found


def _table(items: Sequence[Item], root: Path, table: Path, named: dict[str, str],
           patients: list[str | None]) -> Labels:
    header, rows = _read_table(table)
    at = {role: _column(header, role, named, table, role in ("path", "class")) for role in ROLES}
    by_name: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        for name in {item.key, item.base_key, item.relative}:
            by_name.setdefault(name, []).append(i)
    pairs: list[tuple[str, str] | None] = [None] * len(items)
    reasons = [f"no row of {table.name} names it"] * len(items)
    patients = list(patients)
    row_of: dict[int, int] = {}
    for line, row in enumerate(rows, 2):
        cell = {role: (row[c].strip() if c is not None and c < len(row) else "") for role, c in at.items()}
        name = cell["path"]
        targets = by_name.get(name) or by_name.get(_relative(name, root), [])
        if not targets:
            if name.startswith(("file:", "dicom:")) or not (root / _relative(name, root)).is_file():
                raise InputError(f"--labels {table} line {line} names {name!r}, which is no image "
                                 f"under {root}",
                                 hint="each row names a file (relative to the folder) or a key")
            continue  # a file left out (unreadable, with --on-error skip)
        for i in targets:
            if i in row_of:
                raise InputError(f"--labels {table} lines {row_of[i]} and {line} both label "
                                 f"{items[i].relative}", hint="give each file one row")
            row_of[i] = line
            missing = [role for role in ("class", "group") if at[role] is not None and not cell[role]]
            pairs[i] = None if missing else (cell["group"], cell["class"])
            reasons[i] = f"{table.name} line {line} has no {' or '.join(missing)}" if missing else ""
            if cell["patient"]:
                patients[i] = cell["patient"]
    columns = {role: header[c] for role, c in at.items() if c is not None}
    return Labels("table", pairs, reasons, patients, at["group"] is not None,
                  {"table": table.name, "sha256": file_digest(table), "columns": columns})


def _relative(name: str, root: Path) -> str:
    """A table's path cell as a path relative to the folder (POSIX)."""
    path = Path(name.replace("\\", "/"))
    if path.is_absolute():
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()
    return path.as_posix()
