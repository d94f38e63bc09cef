"""Bring your own images: a folder of image files plus a CSV of attributes.

The CSV (``data.csv``, default ``attributes.csv`` in ``data.root``; a relative path is read from the root)
has a ``file`` column (path relative to the root) and one column per attribute: the label and any group
columns. ``data.target`` and ``data.group`` name columns (``class`` falls back to a ``label`` column);
groups may be intersections (``"sex*age"``). Values are kept as text; classes and groups are sorted
(numbers by value). A row with an empty target or group is dropped and counted; a missing or unreadable
file is an error naming it, or skipped and counted with ``data.skip_unreadable = true``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from prunefair.data.assemble import LoadOptions, build_grouped
from prunefair.data.attributes import categorical, select_attribute, split_spec

log = logging.getLogger("prunefair.data")

MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def read_attributes_csv(path: Path):
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"data.csv = {str(path)!r}: attribute file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc})") from None
    original = [str(c) for c in df.columns]
    df.columns = [c.strip().lower() for c in original]
    seen: dict[str, str] = {}
    for name, column in zip(original, df.columns):  # 'Label' and 'label' would both be the column 'label'
        if column in seen:
            raise ValueError(f"{path}: columns {seen[column]!r} and {name!r} are one name (column names are read "
                             "without case and surrounding spaces); rename or remove one")
        seen[column] = name
    if "file" not in df.columns:
        raise ValueError(f"{path}: needs a 'file' column (columns: {', '.join(df.columns)})")
    if len(df) == 0:
        raise ValueError(f"{path}: no rows")
    return df


def load_folder(*, root=None, target="class", group="class", image_size=None, options=None) -> dict:
    options = dict(options or {})
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data.root = {str(root)!r}: image folder not found")
    csv = Path(options.get("csv") or "attributes.csv")
    csv = csv if csv.is_absolute() else root / csv
    df = read_attributes_csv(csv)
    columns = [c for c in df.columns if c != "file"]
    attrs = {c: categorical(df[c].str.strip().tolist()) for c in columns}
    aliases = {"class": "label"} if "class" not in attrs and "label" in attrs else {}
    y = select_attribute(attrs, target, key="target", aliases=aliases)
    g = select_attribute(attrs, group, key="group", aliases=aliases)
    files = [str(root / f.strip()) for f in df["file"]]
    _warn_repeated_rows(csv, files)
    opts = LoadOptions.from_dict(options)
    missing = [i for i, f in enumerate(files) if not Path(f).is_file()]
    info = {"dataset": "folder", "root": str(root), "csv": str(csv), "rows": len(df)}
    if missing:
        first = df["file"].iloc[missing[0]]
        if not opts.skip_unreadable:
            raise FileNotFoundError(f"{csv}: row {missing[0] + 2} names {first!r}, not found under {root} "
                                    f"({len(missing)} missing in all; data.skip_unreadable = true skips them)")
        log.warning("%s: skipped %d row(s) whose file is missing, first %r", csv, len(missing), first)
        info["skipped_missing_file"] = len(missing)
        keep = np.setdiff1d(np.arange(len(files)), missing)
        files = [files[i] for i in keep]
        y = type(y)(y.codes[keep], y.names)
        g = type(g)(g.codes[keep], g.names)
    info["target_columns"] = split_spec(target)
    data, clusters = build_grouped(files, y, g, image_size=image_size, options=opts, mean=MEAN, std=STD, info=info)
    return {"all": data, "clusters": clusters}


def _warn_repeated_rows(csv: Path, files: list[str]) -> None:
    """A file named by two rows of the CSV is two samples (handled as byte-identical copies: kept on one side of the
    split, or one kept with data.drop_duplicates); said, naming the rows, since it is most often a mistake."""
    rows: dict[str, list[int]] = {}
    for i, f in enumerate(files):
        rows.setdefault(os.path.normpath(f), []).append(i + 2)  # CSV line numbers, after the header
    repeated = [r for r in rows.values() if len(r) > 1]
    if repeated:
        first = repeated[0]
        log.warning("%s: %d file(s) are named by more than one row (e.g. rows %s name %r); each row is a sample",
                    csv, len(repeated), " and ".join(map(str, first[:3])), files[first[0] - 2])
