"""Reading a study: a TOML file or a shipped preset, merged, overridden and validated into one StudyConfig."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

from pydantic import ValidationError

from prunefair.config.overrides import _drop_other_names, _section_for, apply_overrides
from prunefair.config.sections import ConfigError
from prunefair.config.study import StudyConfig


def _toml(value) -> str:
    """A value as the study file spells it: true, "text", [1, 2] (not Python's True, 'text')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table: {group = "0", factor = 2}
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _location(loc) -> str:
    """seeds[0], finetune.methods[1], train.epochs."""
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _did_you_mean(loc: tuple, section) -> str:
    """" (did you mean 'train.epochs'?)" for a misspelt key (train.epoch, Train), or ""."""
    import difflib

    key = str(loc[-1])
    lowered = {}  # a former name (prune.method) points to the current one (criterion)
    for name, field in section.model_fields.items() if section else ():
        for n in (name, *(getattr(field.validation_alias, "choices", None) or ())):
            lowered.setdefault(n.lower(), name)
    close = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.75)
    return f" (did you mean '{_location((*loc[:-1], lowered[close[0]]))}'?)" if close else ""


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid study configuration"]
    for e in err.errors():
        loc = _location(e["loc"])
        if e["type"] == "extra_forbidden":
            section = _section_for(e["loc"][:-1])
            allowed = ", ".join(section.model_fields) if section else "?"
            lines.append(f"  unknown key '{loc}'{_did_you_mean(e['loc'], section)}; allowed keys here: {allowed}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "model_type":  # pydantic's "a valid dictionary or instance of ModelConfig"
                msg = f"expected a table ([{loc}] in the study file, or {loc}.key=value overrides)"
            if e["type"] == "list_type" and not isinstance(e.get("input"), (dict, list)):  # rates = 0.9
                msg += f"; write a list, even of one value: {loc} = [{_toml(e.get('input'))}]"
            if isinstance(e.get("input"), dict):  # a check across the keys of a section: the message names them
                lines.append(f"  {loc or 'study'}: {msg}")
            else:
                lines.append(f"  {loc} = {_toml(e.get('input'))}: {msg}")
    return "\n".join(lines)



def validate_config(raw: dict, *, source: str = "config", stored: bool = False) -> StudyConfig:
    """``stored=True`` for the config.toml of a study folder: see ``sections.stored``."""
    try:
        return StudyConfig.model_validate(raw, context={"stored": stored})
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None


def load_config(
    path: str | Path | None = None, *, overrides: list[str] | None = None, preset: str | None = None,
    stored: bool = False,
) -> StudyConfig:
    """Read a study file (or a shipped preset), apply dotted overrides, validate (``stored=True``: the
    config.toml of an existing study, whose Python-registered dataset or model need not be registered here)."""
    raw: dict = {}
    source = "defaults"
    if preset is not None:
        raw, source = read_preset(preset), f"preset {preset!r}"
    if path is not None:
        p = Path(path)
        try:
            raw = _deep_merge(raw, tomllib.loads(_read_study_file(p)))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        source = f"{source} + {p}" if preset is not None else str(p)  # the file merged over the preset
    if overrides:
        source += " + overrides " + " ".join(overrides)
    return validate_config(apply_overrides(raw, overrides), source=source, stored=stored)


def resolve_config(config: StudyConfig | dict | str | Path | None, *,
                   overrides: list[str] | None = None) -> StudyConfig:
    """A validated StudyConfig from a StudyConfig, a dict in the study-file shape, the path of a TOML study file,
    or None (the defaults); ``overrides`` (dotted ``key=value``) apply on top."""
    if isinstance(config, (StudyConfig, dict)) or config is None:
        raw = config.to_dict() if isinstance(config, StudyConfig) else dict(config or {})
        return validate_config(apply_overrides(raw, overrides), source="config")
    if isinstance(config, (str, Path)):
        return load_config(config, overrides=overrides)
    raise ConfigError(f"config: a {type(config).__name__}; give a StudyConfig, a dict in the study-file shape or the "
                      "path of a TOML study file")


def _read_study_file(p: Path) -> str:
    """The text of a study file; a missing, unreadable or non-UTF-8 file is a ConfigError naming it."""
    if not p.exists():
        raise ConfigError(f"{p}: study file not found")
    if p.is_dir():
        raise ConfigError(f"{p}: is a folder, not a study file (give the path of a .toml file)")
    try:  # utf-8-sig: a byte-order mark, as some Windows editors write, is not part of the TOML
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not valid UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
                          "save the study file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the study file: {exc.strerror or exc}") from None


def preset_names() -> list[str]:
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("prunefair.presets").iterdir() if p.name.endswith(".toml"))


def preset_description(name: str) -> str:
    """The first comment line of a preset file (what it reproduces), or ''."""
    from importlib import resources

    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    for line in resources.files("prunefair.presets").joinpath(f"{name}.toml").read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def read_preset(name: str) -> dict:
    from importlib import resources

    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}; allowed: {', '.join(preset_names())}")
    return tomllib.loads(resources.files("prunefair.presets").joinpath(f"{name}.toml").read_text())


def _deep_merge(base: dict, extra: dict, section: tuple = ()) -> dict:
    """``extra`` merged over ``base``; a key of ``extra`` also replaces its other name in ``base`` (see
    apply_overrides), so a file's prune.criterion wins over a preset's prune.method."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v, (*section, k))
        else:
            _drop_other_names(out, section, k, keep=extra)
            out[k] = v
    return out
