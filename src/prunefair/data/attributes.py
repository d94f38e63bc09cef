"""Attributes of samples (ethnicity, gender, age bins, CSV columns) as coded targets and groups.

An attribute is integer codes (-1 = unknown) with a name per code. A target or group is one attribute
or an intersection written ``"ethnicity*gender"`` (also ``"ethnicity/gender"`` or ``"ethnicity x gender"``),
whose groups are named like ``"White/male"``; only combinations that occur in the data become groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Nine age bins by default (the paper uses nine, edges unpublished): lower edges, last bin open-ended.
DEFAULT_AGE_BINS: tuple[int, ...] = (0, 3, 10, 20, 30, 40, 50, 60, 70)


@dataclass(frozen=True)
class Attribute:
    codes: np.ndarray  # int64, -1 where unknown
    names: tuple[str, ...]


def split_spec(spec: str) -> list[str]:
    """'ethnicity*gender' -> ['ethnicity', 'gender']; a plain name gives one part."""
    parts = [p.strip().lower() for p in re.split(r"\*|/|\s+x\s+", spec)]
    if not spec.strip() or any(not p for p in parts):
        raise ValueError(f"malformed attribute {spec!r}; write one name or an intersection like 'ethnicity*gender'")
    return parts


def canonical_spec(spec: str, aliases: dict[str, str] | None = None) -> str:
    aliases = aliases or {}
    return "*".join(aliases.get(p, p) for p in split_spec(spec))


def select_attribute(
    attrs: dict[str, Attribute], spec: str, *, key: str, aliases: dict[str, str] | None = None
) -> Attribute:
    """The attribute (or intersection) named by ``spec``; ``key`` names the config key in errors."""
    aliases = aliases or {}
    parts = [aliases.get(p, p) for p in split_spec(spec)]
    for p in parts:
        if p not in attrs:
            allowed = ", ".join(sorted(attrs))
            raise ValueError(f"data.{key} = {spec!r}: unknown attribute {p!r}; allowed: {allowed} "
                             "(or an intersection such as 'a*b')")
    if len(parts) != len(set(parts)):
        raise ValueError(f"data.{key} = {spec!r}: an attribute appears twice")
    if len(parts) == 1:
        return attrs[parts[0]]
    try:
        return intersect([attrs[p] for p in parts])
    except ValueError as exc:
        raise ValueError(f"data.{key} = {spec!r}: {exc}") from None


def intersect(attrs: list[Attribute]) -> Attribute:
    """Cross product of attributes, keeping the combinations present; names joined by '/'."""
    n = len(attrs[0].codes)
    combined = np.zeros(n, dtype=np.int64)
    unknown = np.zeros(n, dtype=bool)
    for a in attrs:
        unknown |= a.codes < 0
        combined = combined * len(a.names) + np.maximum(a.codes, 0)
    present = np.unique(combined[~unknown])
    lookup = {int(c): i for i, c in enumerate(present)}
    names = []
    for c in present:
        parts, rest = [], int(c)
        for a in reversed(attrs):
            parts.append(a.names[rest % len(a.names)])
            rest //= len(a.names)
        names.append("/".join(reversed(parts)))
    if len(set(names)) < len(names):  # values holding '/': ('a/b', 'c') and ('a', 'b/c') would be one group's name
        same = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"two groups of the intersection are both named {same!r}: a value holds '/', which joins "
                         "the values of an intersection; rename the values (e.g. replace '/' by '-')")
    codes = np.array([lookup.get(int(c), -1) for c in combined], dtype=np.int64)
    codes[unknown] = -1
    return Attribute(codes, tuple(names))


def age_bin_names(edges: tuple[int, ...] | list[int]) -> tuple[str, ...]:
    names = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])]
    return tuple(names + [f"{edges[-1]}+"])


def check_age_bins(edges) -> tuple[int, ...]:
    edges = tuple(int(e) for e in edges)
    if len(edges) < 2 or edges[0] < 0 or any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"age_bins = {list(edges)}: need at least two strictly increasing lower edges >= 0")
    return edges


def bin_ages(ages: np.ndarray, edges) -> Attribute:
    """Ages into bins with the given lower edges (the last bin is open-ended); below edges[0] is unknown."""
    edges = check_age_bins(edges)
    codes = np.searchsorted(np.asarray(edges), np.asarray(ages), side="right").astype(np.int64) - 1
    codes[np.asarray(ages) < 0] = -1
    return Attribute(codes, age_bin_names(edges))


def categorical(values, *, order: list[str] | None = None) -> Attribute:
    """Codes of string values, in ``order`` if given, else sorted (numbers by value); '' or NaN is unknown."""
    vals = ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]
    if order is None:
        distinct = sorted({v for v in vals if v}, key=_natural_key)
    else:
        distinct = list(order)
    lookup = {v: i for i, v in enumerate(distinct)}
    return Attribute(np.array([lookup.get(v, -1) for v in vals], dtype=np.int64), tuple(distinct))


def _natural_key(v: str):
    """Numbers by value, then everything else as text. "nan" (a value as a CSV can hold it) is text: as a number it
    compares with nothing, and the order (so group ids, strata and splits) then followed the set's hash order,
    which changes from process to process."""
    try:
        number = float(v)
    except ValueError:
        return (1, 0.0, v)
    return (1, 0.0, v) if number != number else (0, number, v)
