"""Declarative column mapping: which source column (or constant) feeds each canonical field.

The same structure comes from a Python dict or a TOML file::

    [options]
    day_first = true                      # optional; absent = decided from each column's values
    extra_columns = "custom_properties"   # or "ignore" (default)
    [options.status_synonyms]
    "réglée" = "paid"

    [customers]
    file = "clients.xlsx"                 # optional, relative to the data folder
    [customers.columns]                   # canonical field = source column
    id = "Code client"
    [customers.constants]                 # canonical field = value for every row
    country = "FR"

A source column whose name already is the canonical field (ignoring case, accents, spaces and
punctuation: "Customer ID" feeds `customer_id`) needs no entry, so a mapping only names what
differs, and files with canonical headers load with no mapping at all.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from fincome_toolkit._parse_core import ParseOptions, normalise_key_text
from fincome_toolkit.errors import InputError
from fincome_toolkit.frames import FIELDS, REQUIRED_FIELDS

_FRAME_KEYS = ("file", "sheet", "columns", "constants")
_SYNONYM_OPTIONS = (
    "status_synonyms",
    "interval_synonyms",
    "type_synonyms",
    "currency_synonyms",
    "country_synonyms",
)
_OPTION_KEYS = ("day_first", "decimal_comma", "extra_columns", "null_values", *_SYNONYM_OPTIONS)
Scalar = str | int | float | bool
# Required fields the loader can fill from another column: a currency written in the amounts
# (`€12`), an interval count written in the unit (`quarterly`, `3 months`, or 1 by default).
_DERIVED_FROM = {"currency": ("amount_excluding_tax",), "interval_count": ("interval_unit",)}


@dataclass(frozen=True)
class Constant:
    """A value given in the mapping for every row of a frame."""

    value: Scalar


@dataclass(frozen=True)
class FrameMapping:
    """The mapping of one frame: its file, and canonical field → source column or constant."""

    file: str | None = None
    sheet: str | None = None
    columns: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Scalar] = field(default_factory=dict)


def _closest(word: str, choices: Sequence[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _expect(value: Any, kind: type | tuple[type, ...], what: str, where: str) -> Any:
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise InputError(
            f"{what} must be a {names}, not {value!r}",
            where=where,
            fix="see the mapping format in fincome_toolkit/mapping.py",
        )
    return value


def _check_keys(given: Mapping[str, Any], allowed: Sequence[str], what: str, where: str) -> None:
    for key in given:
        if key not in allowed:
            raise InputError(
                f"unknown {what} {key!r}{_closest(key, allowed)}",
                where=where,
                fix=f"use one of: {', '.join(allowed)}",
            )


def _frame_from_dict(name: str, raw: Any, where: str) -> FrameMapping:
    raw = _expect(raw, dict, f"[{name}]", where)
    _check_keys(raw, _FRAME_KEYS, f"key in [{name}]", where)
    fields_ = list(FIELDS[name])
    columns = _expect(raw.get("columns", {}), dict, f"[{name}.columns]", where)
    constants = _expect(raw.get("constants", {}), dict, f"[{name}.constants]", where)
    for table, entries in (("columns", columns), ("constants", constants)):
        _check_keys(entries, fields_, f"{name} field in [{name}.{table}]", where)
    for canonical, source in columns.items():
        _expect(source, str, f"[{name}.columns] {canonical}", where)
    for canonical, value in constants.items():
        _expect(value, (str, int, float, bool), f"[{name}.constants] {canonical}", where)
    both = sorted(set(columns) & set(constants))
    if both:
        raise InputError(
            f"[{name}] maps {', '.join(both)} both to a column and to a constant",
            where=where,
            fix="keep only one of the two entries",
        )
    return FrameMapping(
        file=_expect(raw["file"], str, f"[{name}] file", where) if "file" in raw else None,
        sheet=_expect(raw["sheet"], str, f"[{name}] sheet", where) if "sheet" in raw else None,
        columns=dict(columns),
        constants=dict(constants),
    )


def _options_from_dict(raw: Any, where: str) -> ParseOptions:
    raw = _expect(raw, dict, "[options]", where)
    _check_keys(raw, _OPTION_KEYS, "option", where)
    kwargs: dict[str, Any] = {}
    for key in ("day_first", "decimal_comma"):
        if key in raw:
            kwargs[key] = _expect(raw[key], bool, f"options.{key}", where)
    if "extra_columns" in raw:
        value = _expect(raw["extra_columns"], str, "options.extra_columns", where)
        if value not in ("ignore", "custom_properties"):
            raise InputError(
                f"options.extra_columns is {value!r}",
                where=where,
                fix='use "ignore" or "custom_properties"',
            )
        kwargs["extra_columns"] = value
    if "null_values" in raw:
        values = _expect(raw["null_values"], list, "options.null_values", where)
        kwargs["null_values"] = tuple(_expect(v, str, "a null value", where) for v in values)
    for key in _SYNONYM_OPTIONS:
        if key in raw:
            table = _expect(raw[key], dict, f"[options.{key}]", where)
            for spelling, target in table.items():
                _expect(target, str, f"[options.{key}] {spelling!r}", where)
            kwargs[key] = dict(table)
    try:
        return ParseOptions(**kwargs)
    except ValueError as error:
        raise InputError(str(error), where=where) from None


@dataclass(frozen=True)
class ColumnMapping:
    """Per-frame column mappings plus the parse options stored with them."""

    frames: Mapping[str, FrameMapping] = field(default_factory=dict)
    options: ParseOptions = field(default_factory=ParseOptions)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str = "mapping") -> ColumnMapping:
        """Build and validate a mapping from `{"options": {...}, "customers": {...}, ...}`."""
        _expect(data, Mapping, "the mapping", where)
        _check_keys(data, ("options", *FIELDS), "section", where)
        frames = {
            name: _frame_from_dict(name, data[name], where) for name in FIELDS if name in data
        }
        options = _options_from_dict(data.get("options", {}), where)
        return cls(frames=frames, options=options)

    @classmethod
    def from_toml(cls, path: str | Path) -> ColumnMapping:
        """Read and validate a TOML mapping file."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise InputError(
                "mapping file not found", where=str(path), fix="check the --mapping path"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            raise InputError(f"cannot read the mapping file: {error}", where=str(path)) from None
        except tomllib.TOMLDecodeError as error:
            raise InputError(
                f"not valid TOML: {error}",
                where=str(path),
                fix='quote column names with spaces or accents: id = "Code client"',
            ) from None
        return cls.from_dict(data, where=str(path))

    def for_frame(self, name: str) -> FrameMapping:
        """The mapping of frame `name` (an empty one when the mapping does not mention it)."""
        return self.frames.get(name, FrameMapping())

    def with_frame(self, name: str, frame: FrameMapping) -> ColumnMapping:
        """A copy with the mapping of one frame replaced (handy when building one in a UI)."""
        return replace(self, frames={**self.frames, name: frame})

    def to_dict(self) -> dict[str, Any]:
        """The mapping as plain data, options first; only settings that differ from defaults."""
        data: dict[str, Any] = {}
        defaults = ParseOptions()
        options = {
            f.name: getattr(self.options, f.name)
            for f in fields(ParseOptions)
            if getattr(self.options, f.name) != getattr(defaults, f.name)
        }
        if "null_values" in options:
            options["null_values"] = list(options["null_values"])
        if options:
            data["options"] = {
                k: dict(v) if isinstance(v, Mapping) else v for k, v in options.items()
            }
        for name, frame in self.frames.items():
            entry: dict[str, Any] = {}
            if frame.file is not None:
                entry["file"] = frame.file
            if frame.sheet is not None:
                entry["sheet"] = frame.sheet
            if frame.columns:
                entry["columns"] = dict(frame.columns)
            if frame.constants:
                entry["constants"] = dict(frame.constants)
            data[name] = entry
        return data

    def to_toml(self) -> str:
        """The mapping as TOML text that `from_toml` reads back identically."""
        return _to_toml(self.to_dict())


def _toml_key(key: str) -> str:
    bare = key and all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # JSON escapes are valid TOML escapes


def _to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, table in tables.items():
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        body = _to_toml(table, name)
        lines.append(f"\n[{name}]" + (f"\n{body}" if body else ""))
    return "\n".join(lines).strip() + "\n"


@dataclass(frozen=True)
class ResolvedColumns:
    """Where each canonical field of one file comes from, after mapping and name matching."""

    sources: Mapping[str, str | Constant]  # canonical field → source column or constant
    extra: tuple[str, ...]  # source columns that feed no field


def resolve_columns(
    frame: str, available: Sequence[str], mapping: FrameMapping, *, file: str
) -> ResolvedColumns:
    """Match canonical fields to the columns a file has; report every problem at once.

    Raises `InputError` when a mapped column is absent from the file or a required field
    (`frames.REQUIRED_FIELDS`) stays unmapped, listing the columns the file does have.
    """
    have = ", ".join(repr(c) for c in available) or "(none)"
    missing_mapped = [(f, s) for f, s in mapping.columns.items() if s not in available]
    if missing_mapped:
        details = "; ".join(
            f"{canonical} = {source!r}{_closest(source, available)}"
            for canonical, source in missing_mapped
        )
        raise InputError(
            f"the mapping names columns this file does not have: {details}. "
            f"The file's columns are: {have}",
            where=file,
            fix=f"correct [{frame}.columns] in the mapping",
        )
    by_key = {normalise_key_text(c): c for c in reversed(available)}
    sources: dict[str, str | Constant] = dict(mapping.columns)
    sources |= {f: Constant(v) for f, v in mapping.constants.items()}
    claimed = set(mapping.columns.values())
    for canonical in FIELDS[frame]:
        match = by_key.get(canonical.replace("_", " "))
        if canonical not in sources and match is not None and match not in claimed:
            sources[canonical] = match
            claimed.add(match)
    _check_required(frame, sources, available, file=file)
    extra = tuple(c for c in available if c not in claimed)
    return ResolvedColumns(sources=sources, extra=extra)


def _check_required(
    frame: str, sources: Mapping[str, Any], available: Sequence[str], *, file: str
) -> None:
    unmapped = [
        f
        for f in REQUIRED_FIELDS[frame]
        if f not in sources and not any(other in sources for other in _DERIVED_FROM.get(f, ()))
    ]
    if not unmapped:
        return
    keys = {normalise_key_text(c): c for c in available}
    described = []
    for canonical in unmapped:
        close = difflib.get_close_matches(canonical.replace("_", " "), list(keys), n=1, cutoff=0.6)
        described.append(f"{canonical} (did you mean {keys[close[0]]!r}?)" if close else canonical)
    example = "\n".join(f'  {f} = "<column in the file>"' for f in unmapped)
    raise InputError(
        f"required {frame} field(s) not found: {', '.join(described)}. "
        f"The file's columns are: {', '.join(repr(c) for c in available) or '(none)'}",
        where=file,
        fix=f"rename the columns, or map them in the mapping file:\n  [{frame}.columns]\n{example}",
    )
