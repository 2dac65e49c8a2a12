"""Loading ERP exports into the three canonical frames, with every unreadable value reported.

`load_dataset("exports/", mapping="mapping.toml")` finds `customers.*`, `subscriptions.*` and
`invoices.*` in the folder (or the files the mapping names), reads every column as text, maps
columns to canonical fields and parses them with the vectorised parsers of `parsing.py`. A value
that cannot be parsed becomes null in its frame *and* a parse-issue row (frame, file, line,
record id, column, raw value, reason); rows are never dropped (blank lines are not rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from fincome_toolkit import parsing
from fincome_toolkit._fields import (
    ParsedField,
    custom_properties_column,
    field_inputs,
    parse_fields,
)
from fincome_toolkit._parse_core import constant
from fincome_toolkit._readers import FORMATS, LINE, RawTable, read_raw
from fincome_toolkit.errors import InputError
from fincome_toolkit.frames import (
    FIELDS,
    FRAME_NAMES,
    PARSE_ISSUE_SCHEMA,
    SOURCE_FILE,
    SOURCE_LINE,
    Dataset,
    SourceFile,
    canonical_schema,
    empty_parse_issues,
)
from fincome_toolkit.mapping import ColumnMapping, FrameMapping, resolve_columns

MappingLike = ColumnMapping | Mapping[str, Any] | str | Path | None

# File names looked for in a data folder, per frame (any supported extension).
FRAME_FILE_STEMS = {
    "customers": ("customers", "customer", "clients", "client"),
    "subscriptions": ("subscriptions", "subscription", "abonnements", "abonnement"),
    "invoices": ("invoices", "invoice", "factures", "facture"),
}


@dataclass(frozen=True)
class LoadedFrame:
    """One canonical frame, the values of its file that could not be parsed, and the file."""

    frame: pl.DataFrame
    parse_issues: pl.DataFrame
    source: SourceFile


def as_mapping(mapping: MappingLike) -> ColumnMapping:
    """A `ColumnMapping` from a mapping, a dict, a TOML path, or None (no mapping)."""
    if mapping is None:
        return ColumnMapping()
    if isinstance(mapping, ColumnMapping):
        return mapping
    if isinstance(mapping, str | Path):
        return ColumnMapping.from_toml(mapping)
    return ColumnMapping.from_dict(mapping)


def _issue_rows(
    *,
    frame: str,
    file: str,
    lines: pl.Series,
    record_ids: pl.Series,
    column: str,
    rows: pl.Series,
    raw: pl.Series,
    reasons: pl.Series,
    source_column: str | None,
) -> pl.DataFrame:
    """Parse-issue rows for the values at `rows` (their raw text and reasons given)."""
    if rows.is_empty():
        return empty_parse_issues()
    suffix = f" (source column {source_column!r})" if source_column not in (None, column) else ""
    return pl.DataFrame(
        {
            "frame": frame,
            "file": file,
            "line": lines.gather(rows),
            "record_id": record_ids.gather(rows),
            "column": column,
            "raw_value": raw.cast(pl.String),
            "reason": reasons + suffix,
        },
        schema=PARSE_ISSUE_SCHEMA,
    )


def _note_rows(frame: str, file: str, column: str, notes: Iterable[str]) -> pl.DataFrame:
    rows = [(frame, file, None, None, column, None, note) for note in notes]
    return pl.DataFrame(rows, schema=PARSE_ISSUE_SCHEMA, orient="row")


def _canonical(frame: str, raw: RawTable, mapping: FrameMapping, options, file: str):
    """Map and parse the text columns of one file into (canonical frame, parse issues).

    The raw table is consumed: its text columns are released as soon as they are parsed.
    """
    data = raw.data
    value_columns = [c for c in data.columns if c != LINE]
    if not value_columns:
        return pl.DataFrame(schema=canonical_schema(frame)), empty_parse_issues()
    resolved = resolve_columns(frame, value_columns, mapping, file=file)
    inputs = field_inputs(data, resolved.sources, frame)
    inputs.pop("custom_properties", None)
    custom_properties = custom_properties_column(
        data, resolved.sources.get("custom_properties"), resolved.extra, options
    )
    lines, height = data[LINE], data.height
    for column in data.columns:  # from here on, `inputs` holds the only reference to the text
        data.drop_in_place(column)
    currency_raw = inputs.get("currency")
    parsed = parse_fields(frame, inputs, options)
    values = {field: result.values for field, result in parsed.items()}
    ids = values.get("id", constant(None, height))
    issues = []
    for field, result in parsed.items():
        source = resolved.sources.get(field)
        issues.append(
            _issue_rows(
                frame=frame,
                file=file,
                lines=lines,
                record_ids=ids,
                column=field,
                rows=result.failed_rows,
                raw=result.failed_raw,
                reasons=result.reasons,
                source_column=source if isinstance(source, str) else None,
            )
        )
        issues.append(_note_rows(frame, file, field, result.notes))
    issues.append(_fill_currency(frame, file, values, parsed, currency_raw, lines, ids))
    _fill_interval_count(values, parsed)
    values["custom_properties"] = custom_properties
    columns = {
        field: values.get(field, constant(None, height, dtype=dtype)).cast(dtype).alias(field)
        for field, dtype in FIELDS[frame].items()
    }
    columns[SOURCE_FILE] = constant(file, height, name=SOURCE_FILE)
    columns[SOURCE_LINE] = lines.alias(SOURCE_LINE)
    result = pl.DataFrame(columns, schema=canonical_schema(frame))
    return result, pl.concat(issues, how="vertical")


def _fill_currency(frame, file, values, parsed, currency_raw, lines, ids) -> pl.DataFrame:
    """Fill an empty currency from a symbol written in the amounts; report contradictions."""
    if "currency" not in FIELDS[frame]:
        return empty_parse_issues()
    written = [
        parsed[f].extra["currency"]
        for f in ("amount_excluding_tax", "tax_amount")
        if f in parsed and "currency" in parsed[f].extra
    ]
    # amounts with no currency written in them (the usual case) change nothing
    written = [w for w in written if w.null_count() < len(w)]
    if not written:
        return empty_parse_issues()
    from_amounts = pl.DataFrame(written).select(pl.coalesce(pl.all())).to_series()
    height = len(from_amounts)
    currency = values.get("currency", constant(None, height))
    clash = (
        currency.is_not_null() & from_amounts.is_not_null() & (currency != from_amounts)
    ).fill_null(False)
    values["currency"] = currency.fill_null(from_amounts).set(clash, None)
    rows = clash.arg_true()
    reasons = pl.DataFrame({"c": currency.gather(rows), "a": from_amounts.gather(rows)}).select(
        pl.format("the amount is written in {} but the currency column says {}", "a", "c")
    )
    raw = currency if currency_raw is None else currency_raw
    return _issue_rows(
        frame=frame, file=file, lines=lines, record_ids=ids, column="currency", rows=rows,
        raw=raw.gather(rows), reasons=reasons.to_series(), source_column=None,
    )  # fmt: skip


def _fill_interval_count(values: dict[str, pl.Series], parsed: Mapping[str, ParsedField]):
    """`quarterly` means 3 months: multiply the count by the unit word's count, or take the
    count written in the unit (`3 months`) when the count column is absent or empty."""
    unit = parsed.get("interval_unit")
    if unit is None:
        return
    multiplier, written = unit.extra["multiplier"], unit.extra["interval_count"]
    count = values.get("interval_count")
    if count is None:
        values["interval_count"] = written
        return
    values["interval_count"] = (count * multiplier.fill_null(1)).fill_null(written)


def load_frame(
    path: str | Path,
    frame: str,
    *,
    mapping: MappingLike = None,
    options: parsing.ParseOptions | None = None,
    source_name: str | None = None,
) -> LoadedFrame:
    """Load one export file as the canonical frame `frame` (customers, subscriptions, invoices).

    `options` defaults to the mapping's `[options]`. `source_name` is how the file is cited in
    `source_file` and parse issues (default: the path as given).
    """
    if frame not in FIELDS:
        raise InputError(f"unknown frame {frame!r}", fix=f"use one of: {', '.join(FRAME_NAMES)}")
    column_mapping = as_mapping(mapping)
    frame_mapping = column_mapping.for_frame(frame)
    options = options or column_mapping.options
    path = Path(path)
    shown = source_name or str(path)
    raw = read_raw(path, sheet=frame_mapping.sheet, frame=frame)
    result, issues = _canonical(frame, raw, frame_mapping, options, shown)
    source = SourceFile(
        frame=frame,
        path=path,
        sha256=raw.sha256,
        format=raw.format,
        rows=result.height,
        encoding=raw.encoding,
        delimiter=raw.delimiter,
    )
    return LoadedFrame(frame=result, parse_issues=issues, source=source)


SUPPORTED_EXTENSIONS = tuple(FORMATS)  # file name endings the loaders read


def read_source(
    path: str | Path, *, sheet: str | None = None, frame: str | None = None
) -> pl.DataFrame:
    """One export file's columns as text, as the column mapping sees them (no parsing).

    For tools that let an analyst pick columns before mapping: the same reader, sniffing, sheet
    choice (`sheet`, else one named like `frame`) and errors as `load_frame`, without provenance.
    """
    return read_raw(Path(path), sheet=sheet, frame=frame).data.drop(LINE)


def find_frame_file(data_dir: str | Path, frame: str, mapping: FrameMapping) -> Path:
    """The file of `frame` in `data_dir`: the one the mapping names, else `<frame>.<ext>`."""
    folder = Path(data_dir)
    if mapping.file is not None:
        path = folder / mapping.file
        if not path.is_file():
            raise InputError(
                f"the mapping names {mapping.file!r} as the {frame} file, but it is not there",
                where=str(folder),
                fix=f"correct `file` under [{frame}] in the mapping",
            )
        return path
    stems = FRAME_FILE_STEMS[frame]
    found = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.stem.lower() in stems and p.suffix.lower() in FORMATS
    )
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(p.name for p in found)
        raise InputError(
            f"several {frame} files: {names}",
            where=str(folder),
            fix=f'keep one, or name it in the mapping: [{frame}] file = "{found[0].name}"',
        )
    present = ", ".join(sorted(p.name for p in folder.iterdir() if p.is_file())) or "(none)"
    raise InputError(
        f"no {frame} file: looked for {stems[0]}.* ({', '.join(sorted(FORMATS))}) and "
        f"{', '.join(stems[1:])}.*; the folder holds: {present}",
        where=str(folder),
        fix=f'rename the export, name it in the mapping ([{frame}] file = "..."), or load '
        "only the frames you have (load_dataset(..., frames=[...]) / --only)",
    )


def load_dataset(
    data_dir: str | Path | None = None,
    *,
    mapping: MappingLike = None,
    options: parsing.ParseOptions | None = None,
    paths: Mapping[str, str | Path] | None = None,
    frames: Iterable[str] | None = None,
) -> Dataset:
    """Load the three canonical frames from a data folder and/or explicit file paths.

    `frames` loads only some frames (the others stay empty); by default all three are needed.
    `paths` gives a file per frame explicitly; other frames are looked for in `data_dir`.
    """
    column_mapping = as_mapping(mapping)
    wanted = tuple(frames) if frames is not None else FRAME_NAMES
    paths = dict(paths or {})
    for name in (*wanted, *paths):
        if name not in FIELDS:
            raise InputError(f"unknown frame {name!r}", fix=f"use one of: {', '.join(FRAME_NAMES)}")
    folder = Path(data_dir) if data_dir is not None else None
    if folder is not None and not folder.is_dir():
        raise InputError(
            "data folder not found" if not folder.exists() else "not a folder",
            where=str(folder),
            fix="give the folder that holds customers.*, subscriptions.* and invoices.*",
        )
    files: dict[str, tuple[Path, str]] = {}
    for name in wanted:
        if name in paths:
            files[name] = Path(paths[name]), str(paths[name])
        elif folder is not None:
            path = find_frame_file(folder, name, column_mapping.for_frame(name))
            files[name] = path, path.relative_to(folder).as_posix()
        else:
            raise InputError(f"no file given for {name}", fix="pass a data folder or paths={...}")
    # the frames load side by side: polars releases the GIL, so the small files fill the gaps
    # the big one leaves (hashing, Python glue); errors are raised in frame order
    with ThreadPoolExecutor(max_workers=max(1, len(files))) as pool:
        pending = {
            name: pool.submit(
                load_frame, path, name, mapping=column_mapping, options=options, source_name=shown
            )
            for name, (path, shown) in files.items()
        }
        loaded = {name: future.result() for name, future in pending.items()}
    issues = [item.parse_issues for item in loaded.values()]
    return Dataset(
        **{name: item.frame for name, item in loaded.items()},
        parse_issues=pl.concat([empty_parse_issues(), *issues], how="vertical"),
        sources=tuple(item.source for item in loaded.values()),
    )


def write_clean(dataset: Dataset, out_dir: str | Path) -> dict[str, Path]:
    """Write the canonical frames as Parquet and the parse issues as CSV into `out_dir`."""
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, frame in dataset.frames().items():
            written[name] = folder / f"{name}.parquet"
            frame.write_parquet(written[name])
        written["parse_issues"] = folder / "parse_issues.csv"
        dataset.parse_issues.write_csv(written["parse_issues"])
    except OSError as error:
        raise InputError(
            f"cannot write the output: {error.strerror or error}",
            where=str(folder),
            fix="choose a folder you can write to",
        ) from None
    return written


def issue_summary(parse_issues: pl.DataFrame, *, top: int = 5) -> pl.DataFrame:
    """The most frequent parse problems: frame, column, reason, count (most frequent first)."""
    return (
        parse_issues.group_by("frame", "column", "reason")
        .len("count")
        .sort(["count", "frame", "column"], descending=[True, False, False])
        .head(top)
    )
