"""Which layout an upload uses, and so each image's label and (given) split.

Read in this order, the first that fits wins:
  csv            a CSV inside the upload (labels.csv, or any *.csv with file and label
                 columns) names each image's label; a CSV given as the source itself too
  split-folders  train/, val|valid|validation/, test/ (under any common prefix), each with
                 class folders (or flat files whose names carry the label); the split is kept
  file-names     one flat folder of `label.N.ext`, `label_N.ext`, `label-N.ext`, or names a
                 --label-pattern REGEX matches (its first group is the label)
  class-folders  the class is the first folder below the longest common prefix (ImageFolder)
The decision is made per entry before anything is read or stored; `notes` say what a person
should know about it (a split drawn from train, classes missing from a split).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from core.data.archive import Entry
from core.data.dataset import DatasetError

LAYOUTS = ("class-folders", "split-folders", "file-names", "csv")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}
NAME_LABEL = re.compile(r"^(.+?)[._-]\d+\.[^.]+$")  # cat.12.jpg, dog_7.png, bird-3.jpeg
FILE_COLUMNS = ("file", "filename", "file_name", "path", "image", "image_id", "id", "name")
LABEL_COLUMNS = ("label", "class", "category", "target", "labels")
MIN_NAME_MATCH = 0.8  # share of a flat folder's files whose names must carry a label
NO_FOLDER = "not inside a class folder (use class_name/image.jpg)"


@dataclass
class Planned:
    entry: Entry
    label: str
    split: str | None = None  # "train" / "val" / "test" as given by the upload, None: drawn


@dataclass
class Layout:
    kind: str
    planned: list[Planned] = field(default_factory=list)
    dropped: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_layout(entries: list[Entry], tables: list[Entry], read: Callable[[Entry], bytes],
                label_pattern: str | None = None) -> Layout:
    """The layout of an upload's image `entries`; `tables` are its CSV files (read with
    `read`), `label_pattern` a regex whose first group is the label in a file name."""
    pattern = compile_pattern(label_pattern)
    if any(entry.label is not None for entry in entries):  # a CSV given as the source
        return Layout("csv", [Planned(entry, entry.label) for entry in entries
                              if entry.label is not None])
    notes: list[str] = []
    layout = csv_layout(entries, tables, read, notes)
    if layout is None:
        layout = split_layout(entries, pattern)
    if layout is None and (pattern or flat_names(entries)):
        layout = name_layout(entries, pattern or NAME_LABEL)
    if layout is None:
        layout = class_folder_layout(entries)
    layout.notes[:0] = notes
    layout.notes += split_notes(layout)
    return layout


def compile_pattern(text: str | None) -> re.Pattern | None:
    if not text:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise DatasetError(f"--label-pattern {text!r} is not a valid regular expression ({exc}). "
                           r"Example: '^([a-z]+)_\d+' reads 'cat' from cat_12.jpg.") from None
    if pattern.groups < 1:
        raise DatasetError(f"--label-pattern {text!r} has no group; put the label in "
                           r"parentheses, for example '^([a-z]+)_\d+'.")
    return pattern


# ------------------------------------------------------------------------- class folders

def folders_of(entries: list[Entry]) -> list[list[str]]:
    return [entry.name.split("/")[:-1] for entry in entries]


def class_folder_layout(entries: list[Entry]) -> Layout:
    """ImageFolder: the class is the first folder below the longest common prefix."""
    folders = folders_of(entries)
    prefix = os.path.commonprefix(folders) if folders else []
    if prefix and all(len(folder) == len(prefix) for folder in folders):
        prefix = prefix[:-1]  # every file sits in one folder: that folder is the class
    layout = Layout("class-folders")
    for entry, folder in zip(entries, folders, strict=True):
        if len(folder) > len(prefix):
            layout.planned.append(Planned(entry, folder[len(prefix)]))
        else:
            layout.dropped.append({"file": entry.name, "reason": NO_FOLDER})
    return layout


# ------------------------------------------------------------------------- file names

def base_name(entry: Entry) -> str:
    return entry.name.rsplit("/", 1)[-1]


def name_label(entry: Entry, pattern: re.Pattern) -> str | None:
    match = pattern.search(base_name(entry))
    label = match.group(1) if match else None
    return label.strip() if label and label.strip() else None


def flat_names(entries: list[Entry]) -> bool:
    """All files in one folder, and most of their names carry a label in several classes."""
    folders = {tuple(folder) for folder in folders_of(entries)}
    return len(folders) == 1 and names_carry_labels(entries)


def names_carry_labels(entries: list[Entry]) -> bool:
    labels = [name_label(entry, NAME_LABEL) for entry in entries]
    found = [label for label in labels if label]
    distinct = len(set(found))
    return (bool(entries) and len(found) >= MIN_NAME_MATCH * len(entries) and distinct >= 2
            and distinct <= len(found) / 2)


def name_layout(entries: list[Entry], pattern: re.Pattern) -> Layout:
    layout = Layout("file-names")
    for entry in entries:
        label = name_label(entry, pattern)
        if label:
            layout.planned.append(Planned(entry, label))
        else:
            layout.dropped.append({"file": entry.name, "reason": no_label_reason(pattern)})
    return layout


def no_label_reason(pattern: re.Pattern) -> str:
    if pattern is NAME_LABEL:
        return "its name carries no label (expected label.N.jpg, label_N.jpg or label-N.jpg)"
    return f"its name does not match the label pattern {pattern.pattern!r}"


# ------------------------------------------------------------------------- split folders

def split_layout(entries: list[Entry], pattern: re.Pattern | None) -> Layout | None:
    """train/ (and val/, test/) folders holding class folders or labelled names, or None."""
    folders = folders_of(entries)
    prefix = os.path.commonprefix(folders) if folders else []
    for root in (prefix, prefix[:-1]) if prefix else (prefix,):
        layout = split_layout_at(entries, folders, len(root), pattern)
        if layout is not None:
            return layout
    return None


def split_layout_at(entries: list[Entry], folders: list[list[str]], depth: int,
                    pattern: re.Pattern | None) -> Layout | None:
    tops = [folder[depth].lower() if len(folder) > depth else None for folder in folders]
    if "train" not in {SPLIT_NAMES.get(top) for top in tops if top}:
        return None
    inside = [i for i, top in enumerate(tops) if top in SPLIT_NAMES]
    flat = [i for i in inside if len(folders[i]) == depth + 1]
    flat_ok = names_carry_labels([entries[i] for i in flat]) if flat else False
    if len(flat) > len(inside) / 2 and not (flat_ok or pattern):
        splits = {SPLIT_NAMES[top] for top in tops if top in SPLIT_NAMES}
        if len(splits) > 1:  # train/ and test/ of unlabelled images: no class to read
            raise DatasetError(
                "The upload's train/ and val/ or test/ folders hold images directly, so their "
                "classes are unknown. Put each class's images in its own folder inside them "
                "(train/cat/1.jpg), name the files label.N.jpg, or give a label pattern.")
        return None  # one "train/" folder of images beside others: a class named train
    layout = Layout("split-folders")
    for i, (entry, folder) in enumerate(zip(entries, folders, strict=True)):
        split = SPLIT_NAMES.get(tops[i]) if tops[i] else None
        if split is None:
            layout.dropped.append({"file": entry.name,
                                   "reason": "outside the train/, val/ and test/ folders"})
            continue
        label = label_in_split(entry, folder, depth, pattern, flat_ok)
        if label:
            layout.planned.append(Planned(entry, label, split))
        else:
            reason = no_label_reason(pattern) if pattern else NO_FOLDER
            layout.dropped.append({"file": entry.name, "reason": reason})
    return layout


def label_in_split(entry: Entry, folder: list[str], depth: int, pattern: re.Pattern | None,
                   names_ok: bool) -> str | None:
    if pattern:
        return name_label(entry, pattern)
    if len(folder) > depth + 1:
        return folder[depth + 1]
    return name_label(entry, NAME_LABEL) if names_ok else None


def split_notes(layout: Layout) -> list[str]:
    """Which given splits lack which classes (the drawn splits are stratified: they never do)."""
    if layout.kind != "split-folders" and not any(p.split for p in layout.planned):
        return []
    by_split: dict[str, set[str]] = defaultdict(set)
    for planned in layout.planned:
        if planned.split:
            by_split[planned.split].add(planned.label)
    classes = set().union(*by_split.values()) if by_split else set()
    notes = []
    for split in ("train", "val", "test"):
        if split in by_split and by_split[split] != classes:
            missing = ", ".join(repr(cls) for cls in sorted(classes - by_split[split]))
            harm = (" A model never sees them in training." if split == "train"
                    else " They are not measured there.")
            notes.append(f"Classes missing from the {split} folder: {missing}.{harm}")
    return notes


# ------------------------------------------------------------------------- csv in the zip

def csv_layout(entries: list[Entry], tables: list[Entry], read: Callable[[Entry], bytes],
               notes: list[str]) -> Layout | None:
    """Labels from the upload's CSV files, or None when none names images in it."""
    ordered = sorted(tables, key=lambda entry: (base_name(entry).lower() != "labels.csv",
                                                entry.name))
    rows: list[tuple[Entry, str, str, str | None]] = []  # (table, file, label, split)
    for table in ordered:
        rows += table_rows(table, read, notes)
    if not rows:
        return None
    lookup = entry_lookup(entries)
    labelled: dict[int, tuple[str, str | None]] = {}
    missing = 0
    for table, file, label, split in rows:
        index = find_entry(lookup, table, file)
        if index is None:
            missing += 1
        else:
            labelled.setdefault(index, (label, split))
    if not labelled:
        names = ", ".join(sorted({table.name for table, *_ in rows}))
        notes.append(f"{names} names no image in the upload; read as folders instead.")
        return None
    return csv_plan(entries, labelled, missing, sorted({t.name for t, *_ in rows}))


def csv_plan(entries: list[Entry], labelled: dict[int, tuple[str, str | None]], missing: int,
             names: list[str]) -> Layout:
    layout = Layout("csv")
    listed = ", ".join(names)
    for index, entry in enumerate(entries):
        if index in labelled:
            label, split = labelled[index]
            layout.planned.append(Planned(entry, label, split))
        else:
            layout.dropped.append({"file": entry.name, "reason": f"not listed in {listed}"})
    if missing:
        layout.notes.append(f"{missing} row(s) of {listed} name files that are not in the "
                            "upload (or not images); they were skipped.")
    return layout


def table_rows(table: Entry, read: Callable[[Entry], bytes], notes: list[str],
               ) -> list[tuple[Entry, str, str, str | None]]:
    """(table, file, label, split) per row of a CSV with file and label columns; [] otherwise."""
    try:
        text = read(table).decode("utf-8-sig")
        rows = [row for row in csv.reader(io.StringIO(text)) if any(cell.strip() for cell in row)]
    except (UnicodeDecodeError, csv.Error, OSError, ValueError):
        notes.append(f"{table.name} could not be read as UTF-8 CSV; it was not used for labels.")
        return []
    if len(rows) < 2:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    file_col = next((header.index(c) for c in FILE_COLUMNS if c in header), None)
    label_col = next((header.index(c) for c in LABEL_COLUMNS if c in header), None)
    if file_col is None or label_col is None:
        if base_name(table).lower() == "labels.csv":
            notes.append(f"{table.name} has no file and label columns (its header is "
                         f"{', '.join(rows[0])}); it was not used.")
        return []
    split_col = header.index("split") if "split" in header else None
    split_of_table = SPLIT_NAMES.get(os.path.splitext(base_name(table))[0].lower())
    out = []
    for row in rows[1:]:
        cells = [cell.strip() for cell in row]
        if len(cells) <= max(file_col, label_col) or not cells[file_col] or not cells[label_col]:
            continue
        split = split_of_table
        if split_col is not None and split_col < len(cells):
            split = SPLIT_NAMES.get(cells[split_col].lower(), split)
        out.append((table, cells[file_col], cells[label_col], split))
    return out


def entry_lookup(entries: list[Entry]) -> dict[str, dict[str, int]]:
    """Entries by full name, by base name and by stem (the last two only when unique)."""
    full = {entry.name: i for i, entry in enumerate(entries)}
    bases = Counter(base_name(entry) for entry in entries)
    stems = Counter(os.path.splitext(base_name(entry))[0] for entry in entries)
    base = {base_name(e): i for i, e in enumerate(entries) if bases[base_name(e)] == 1}
    stem = {os.path.splitext(base_name(e))[0]: i for i, e in enumerate(entries)
            if stems[os.path.splitext(base_name(e))[0]] == 1}
    return {"full": full, "base": base, "stem": stem}


def find_entry(lookup: dict[str, dict[str, int]], table: Entry, file: str) -> int | None:
    """The entry a CSV row names: relative to the CSV's folder, to the upload, or by name."""
    file = file.replace("\\", "/").removeprefix("./")
    folder = table.name.rsplit("/", 1)[0] + "/" if "/" in table.name else ""
    for key, kind in ((folder + file, "full"), (file, "full"), (file.rsplit("/", 1)[-1], "base"),
                      (file.rsplit("/", 1)[-1], "stem")):
        if key in lookup[kind]:
            return lookup[kind][key]
    return None
