"""Dotted overrides (``train.epochs=5``): values parsed as TOML, bare words as strings, ``null`` unsets a key; a
bad bracketed or quoted value is an error naming the override, the problem and the type the key expects."""

from __future__ import annotations

import copy
import re
import tomllib
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from prunefair.config.sections import ConfigError
from prunefair.config.study import StudyConfig


def _section_for(loc: tuple) -> type[BaseModel] | None:
    cls: type[BaseModel] = StudyConfig
    for part in loc:
        field = cls.model_fields.get(str(part))
        ann = field.annotation if field is not None else None
        ann = next((a for a in get_args(ann) if a is not type(None)), ann)  # X | None -> X
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        cls = ann
    return cls


UNSET = object()
"""The value of a ``key=null`` override: remove the key, so that its default applies."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.epochs=5' -> (['train', 'epochs'], 5); values are TOML, bare words are strings, ``null`` is UNSET.

    A value that looks like TOML (it starts with a bracket, a brace or a quote) but does not parse is an error
    naming the override and the problem, never a string.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (for example train.epochs=5)")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if raw == "null":
        return key.split("."), UNSET
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw[:1] not in ("[", "{", '"', "'"):
            return key.split("."), raw
        raise ConfigError(_bad_value_message(text, key, raw, exc)) from None
    return key.split("."), value


def _bad_value_message(text: str, key: str, raw: str, exc: tomllib.TOMLDecodeError) -> str:
    """Why a bracketed or quoted override value is not TOML: the parser's words, the bare items, the expected type."""
    at = len("v = ")  # parse_override parses 'v = <value>': columns count from there
    problem = re.sub(r"\(at line 1, column (\d+)\)", lambda m: f"(at character {int(m[1]) - at} of the value)",
                     str(exc))
    problem = problem.replace("(at end of document)", "(at the end of the value)")
    msg = f"override {text!r}: the value is not valid TOML: {problem}"
    if raw.startswith("[") and raw.endswith("]"):
        bare = [item for item in (i.strip() for i in raw[1:-1].split(",")) if item and not _is_toml_value(item)]
        if bare:
            what = "is not a number, true/false or a quoted string" if len(bare) == 1 else \
                "are not numbers, true/false or quoted strings"
            msg += f"; {', '.join(repr(b) for b in bare)} {what} (quote text in a list: [\"a\", \"b\"])"
    expected = _expected_type(key.split("."))
    return msg + (f"; {key} expects {expected}" if expected else "")


def _is_toml_value(item: str) -> bool:
    try:
        tomllib.loads(f"v = {item}")
    except tomllib.TOMLDecodeError:
        return False
    return True


def _expected_type(path: list[str]) -> str:
    """'a list of integers' for seeds, '' where the key is unknown."""
    section = _section_for(tuple(path[:-1]))
    field = section.model_fields.get(path[-1]) if section else None
    return _describe_type(field.annotation) if field is not None else ""


_TYPE_WORDS = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
               bool: ("true or false", "true/false values")}


def _describe_type(ann: Any, plural: bool = False) -> str:
    """Words for a field's type: list[int] -> 'a list of integers', Literal['a', 'b'] -> 'one of a, b'."""
    origin, args = get_origin(ann), [a for a in get_args(ann) if a is not type(None)]
    if origin is list and args:
        return "a list of " + _describe_type(args[0], plural=True)
    if origin is Literal:
        return ("values among " if plural else "one of ") + ", ".join(str(a) for a in get_args(ann))
    if args:  # X | None
        return _describe_type(args[0], plural)
    if ann in _TYPE_WORDS:
        return _TYPE_WORDS[ann][plural]
    return "a table" if isinstance(ann, type) and issubclass(ann, BaseModel) else ""


def apply_overrides(raw: dict, overrides: list[str] | None) -> dict:
    """A copy of ``raw`` with each dotted override set (or, for ``key=null``, removed); an override of a key also
    replaces the key's other name (prune.method, the former name of prune.criterion) where the file used it."""
    out = copy.deepcopy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            if value is UNSET and part not in node:
                break  # nothing to unset
            node = node.setdefault(part, {})
            if not isinstance(node, dict):  # set so by the study file or preset (the override would hide it)
                from prunefair.config.load import _toml

                raise ConfigError(f"override {text!r}: '{part}' is not a section: the study file (or preset) sets "
                                  f"{part} = {_toml(node)}; write it as a [{part}] table")
        else:
            _drop_other_names(node, path[:-1], path[-1])
            if value is UNSET:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = value
    return out


def _drop_other_names(node: dict, section: list[str] | tuple, key: str, keep: dict | None = None) -> None:
    """Remove from ``node`` (the dict of ``section``) the other accepted names of ``key``'s field, if it has any,
    except those also in ``keep`` (set by the same file, so both names reach validation, which refuses that)."""
    cls = _section_for(tuple(section))
    for field in (cls.model_fields.values() if cls else ()):
        names = getattr(field.validation_alias, "choices", None) or ()
        if key in names:
            for other in names:
                if other != key and other not in (keep or {}):
                    node.pop(other, None)

