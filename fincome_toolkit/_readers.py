"""Reading export files as text: format, encoding and delimiter detection, and row provenance.

Every reader returns every column as text (`pl.String`), plus `LINE`, the 1-based line of the
row in its file: CSV header = line 1 (quoted fields spanning lines are counted), NDJSON text
line, spreadsheet row (header on row 1), 1-based record index for JSON arrays and Parquet.
Files are read by polars' native readers; Python only streams the bytes once, in chunks, to
hash them, count lines and check that they are UTF-8 (a non-UTF-8 file is transcoded first).
For CSV that pass runs in a thread while polars reads the file (hashing 1 GB takes a second).
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import hashlib
import io
import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fincome_toolkit.errors import InputError

LINE = "__source_line__"
FORMATS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv", ".json": "json", ".ndjson": "ndjson",
    ".jsonl": "ndjson", ".parquet": "parquet", ".pq": "parquet", ".xlsx": "xlsx", ".xlsm": "xlsx",
}  # fmt: skip
DELIMITERS = (",", ";", "\t", "|")
_CHUNK = 1 << 23
_HEAD = 1 << 16


@dataclass(frozen=True)
class RawTable:
    """One file read as text: its rows (String columns + LINE) and how it was read."""

    data: pl.DataFrame
    format: str
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None


@dataclass(frozen=True)
class _Facts:
    sha256: str
    size: int
    newlines: int
    ends_with_newline: bool
    head: bytes
    utf8: bool


def file_format(path: Path) -> str:
    """The format named by the file's extension, or an InputError listing the supported ones."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"unsupported file type {path.suffix or '(no extension)'!r}",
            where=str(path),
            fix=f"export as one of: {', '.join(sorted(FORMATS))}",
        )
    return fmt


def _inspect(path: Path, *, text: bool) -> _Facts:
    """One streamed pass: SHA-256, newline count, and (for text) whether the bytes are UTF-8."""
    sha, newlines, size, head, last = hashlib.sha256(), 0, 0, b"", b""
    decoder, utf8 = codecs.getincrementaldecoder("utf-8")(), text
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            head = head or chunk[:_HEAD]
            sha.update(chunk)
            size += len(chunk)
            newlines += chunk.count(b"\n")
            last = chunk[-1:]
            if utf8 and (not chunk.isascii() or decoder.getstate()[0]):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return _Facts(sha.hexdigest(), size, newlines, last == b"\n", head, utf8)


def _encoding(facts: _Facts) -> str:
    if facts.head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if facts.head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if facts.utf8:
        return "utf-8"
    try:  # cp1252 is Latin-1 plus € and typographic quotes; it leaves 5 bytes undefined
        facts.head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


@contextlib.contextmanager
def _as_utf8(path: Path, encoding: str) -> Iterator[Path]:
    """The file itself when it is UTF-8, else a transcoded temporary copy (streamed in chunks)."""
    if encoding in ("utf-8", "utf-8-sig"):
        yield path
        return
    descriptor, name = tempfile.mkstemp(suffix=path.suffix)
    os.close(descriptor)
    copy = Path(name)
    try:
        try:
            _transcode(path, copy, encoding)
        except UnicodeDecodeError:  # a byte cp1252 leaves undefined: Latin-1 reads every byte
            _transcode(path, copy, "latin-1")
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _transcode(source: Path, target: Path, encoding: str) -> None:
    decoder = codecs.getincrementaldecoder(encoding)()
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(_CHUNK):
            writer.write(decoder.decode(chunk).encode("utf-8"))
        writer.write(decoder.decode(b"", final=True).encode("utf-8"))


def sniff_delimiter(sample: str) -> str:
    """The delimiter among `,` `;` tab `|` that splits the first lines into the most even rows."""
    best, best_score = ",", (0.0, 0)
    for delimiter in DELIMITERS:
        try:
            rows = list(itertools.islice(csv.reader(io.StringIO(sample), delimiter=delimiter), 50))
        except csv.Error:
            continue
        if len(rows) > 2:
            rows = rows[:-1]  # the last row of a sample may be cut short
        widths = [len(row) for row in rows if row]
        if not widths or widths[0] < 2:
            continue
        score = (sum(w == widths[0] for w in widths) / len(widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _line_numbers_csv(data: pl.DataFrame, facts: _Facts, *, first_line: int) -> pl.Series:
    """Line of each row: header = first_line - 1; fields with embedded newlines push lines down."""
    total_lines = facts.newlines + (0 if facts.ends_with_newline else 1)
    rows = pl.int_range(0, data.height, dtype=pl.Int64, eager=True) + first_line
    if total_lines == data.height + first_line - 1 or data.width == 0:
        return rows.alias(LINE)
    embedded = data.select(
        pl.sum_horizontal(
            pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in data.columns
        )
    ).to_series()
    return (rows + embedded.cum_sum().shift(1, fill_value=0)).alias(LINE)


def _polars_error(path: Path, error: Exception, fmt: str) -> InputError:
    message = str(error).split("\n\n")[0].strip()
    hints = {
        "csv": "check the delimiter and that quotes are balanced; fields containing the "
        "delimiter or a line break must be quoted",
        "json": "the file must hold one JSON array of objects ([{...}, {...}])",
        "ndjson": "each line must hold one complete JSON object",
        "parquet": "re-export the file as Parquet, or use CSV",
        "xlsx": "open the file in Excel and save it again as .xlsx",
    }
    return InputError(f"cannot read this {fmt} file: {message}", where=str(path), fix=hints[fmt])


def _parse_csv(path: Path, head: bytes, encoding: str) -> tuple[pl.DataFrame, str, int]:
    """Read a CSV file's rows as text: (rows, delimiter, lines skipped before the header)."""
    sample = head.decode(encoding if encoding != "utf-8" else "utf-8-sig", errors="replace")
    sample = sample.lstrip("\ufeff")
    declared = re.match(r"sep=(.)\r?\n", sample)  # Excel's "sep=;" first line
    delimiter = declared.group(1) if declared else sniff_delimiter(sample)
    skip = 1 if declared else 0
    with _as_utf8(path, encoding) as source:
        try:
            data = pl.read_csv(
                source, separator=delimiter, infer_schema=False, skip_rows=skip, quote_char='"'
            )
        except pl.exceptions.NoDataError:
            raise _empty(path) from None
        except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as error:
            raise _polars_error(path, error, "csv") from None
    return data, delimiter, skip


def _read_csv(
    path: Path,
    facts: _Facts,
    encoding: str,
    parsed: tuple[pl.DataFrame, str, int] | None = None,
) -> RawTable:
    """A CSV file as a RawTable; `parsed` is `_parse_csv`'s result when already read."""
    data, delimiter, skip = parsed or _parse_csv(path, facts.head, encoding)
    lines = _line_numbers_csv(data, facts, first_line=2 + skip)
    data = data.with_columns(lines)
    if lines.len() and lines[-1] != lines.len() + 1 + skip:  # line breaks inside or blank lines
        data = _drop_blank_rows(data)
    return RawTable(data, "csv", facts.sha256, encoding=encoding, delimiter=delimiter)


def _utf8_guess(head: bytes) -> str | None:
    """The encoding `_encoding` will most likely choose, judged from the head alone: a UTF-8
    one when the head reads as UTF-8 (the rest of the file may still prove it wrong)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head)  # a cut last character is fine
    except UnicodeDecodeError:
        return None
    return "utf-8"


def _read_csv_while_hashing(path: Path, pool: ThreadPoolExecutor) -> RawTable:
    """Read a CSV file while another thread hashes it (both release the GIL).

    polars reads the file optimistically as UTF-8 when its head says so; the full pass decides,
    and a file that turns out not to be UTF-8 is read again, transcoded.
    """
    inspected = pool.submit(_inspect, path, text=True)
    head = _head(path)
    if not head.strip():
        _facts_of(inspected, path)
        raise _empty(path)
    guess = _utf8_guess(head)
    early: tuple[pl.DataFrame, str, int] | InputError | None = None
    if guess is not None:
        try:
            early = _parse_csv(path, head, guess)
        except InputError as error:
            early = error
    facts = _facts_of(inspected, path)
    encoding = _encoding(facts)
    if early is None or encoding != guess:
        return _read_csv(path, facts, encoding)
    if isinstance(early, InputError):
        raise early
    return _read_csv(path, facts, encoding, early)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(_HEAD)
    except OSError as error:
        raise _unreadable(path, error) from None


def _facts_of(inspected: Future[_Facts], path: Path) -> _Facts:
    try:
        return inspected.result()
    except OSError as error:
        raise _unreadable(path, error) from None


def _unreadable(path: Path, error: OSError) -> InputError:
    return InputError(
        f"cannot read the file: {error.strerror or error}",
        where=str(path),
        fix="check the file's permissions, or copy it to a readable place",
    )


def _empty(path: Path) -> InputError:
    return InputError(
        "the file is empty", where=str(path), fix="export the data again, with a header row"
    )


def _json_error_line(path: Path, error: Exception) -> str:
    found = re.search(r"at character (\d+)", str(error))
    if not found:
        return ""
    line = path.read_bytes()[: int(found.group(1))].count(b"\n") + 1
    return f" (line {line})"


def _read_json(path: Path, facts: _Facts, encoding: str) -> RawTable:
    with _as_utf8(path, encoding) as source:
        try:
            data = pl.read_json(source, infer_schema_length=None)
        except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as error:
            where = _json_error_line(source, error)
            raise InputError(
                f"malformed JSON{where}: {str(error).splitlines()[0]}",
                where=str(path),
                fix="the file must hold one JSON array of objects ([{...}, {...}]); "
                "check the line shown (a missing comma, quote or bracket)",
            ) from None
    # {"data": [{...}, ...]}: an API-style envelope holding the records under one key
    if data.height == 1 and data.width == 1 and data.dtypes[0] == pl.List(pl.Struct):
        data = data.explode(data.columns[0]).unnest(data.columns[0])
    lines = pl.int_range(1, data.height + 1, dtype=pl.Int64, eager=True).alias(LINE)
    return RawTable(_as_text(data).with_columns(lines), "json", facts.sha256, encoding=encoding)


def _read_ndjson(path: Path, facts: _Facts, encoding: str) -> RawTable:
    with _as_utf8(path, encoding) as source:
        try:
            data = pl.read_ndjson(source, infer_schema_length=None)
        except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as error:
            raise InputError(
                f"malformed NDJSON{_first_bad_line(source)}: {str(error).splitlines()[0]}",
                where=str(path),
                fix="each line must hold one complete JSON object",
            ) from None
        total_lines = facts.newlines + (0 if facts.ends_with_newline else 1)
        if total_lines == data.height:
            lines = pl.int_range(1, data.height + 1, dtype=pl.Int64, eager=True)
        else:  # blank lines: find which text lines hold the records
            text = pl.read_csv(
                source, has_header=False, separator="\x1f", quote_char=None, infer_schema=False
            ).to_series()
            filled = text.str.strip_chars().fill_null("") != ""
            lines = (filled.arg_true() + 1).cast(pl.Int64)
    return RawTable(
        _as_text(data).with_columns(lines.alias(LINE)), "ndjson", facts.sha256, encoding=encoding
    )


def _first_bad_line(path: Path) -> str:
    """Error path only: the first line that is not a JSON object."""
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    json.loads(line)
                except ValueError:
                    return f" at line {number}"
    return ""


def _read_parquet(path: Path, facts: _Facts) -> RawTable:
    try:
        data = pl.read_parquet(path)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError, OSError) as error:
        raise _polars_error(path, error, "parquet") from None
    lines = pl.int_range(1, data.height + 1, dtype=pl.Int64, eager=True).alias(LINE)
    return RawTable(_as_text(data).with_columns(lines), "parquet", facts.sha256)


def _read_xlsx(path: Path, facts: _Facts, *, sheet: str | None, frame: str | None) -> RawTable:
    import fastexcel  # polars' own Excel engine

    try:
        workbook = fastexcel.read_excel(path)
        names = workbook.sheet_names
        chosen = _choose_sheet(names, sheet=sheet, frame=frame, path=path)
        data = workbook.load_sheet(chosen, dtypes="string").to_polars()
    except InputError:
        raise
    except Exception as error:  # fastexcel raises its own error types
        raise _polars_error(path, error, "xlsx") from None
    lines = pl.int_range(2, data.height + 2, dtype=pl.Int64, eager=True).alias(LINE)
    return RawTable(_drop_blank_rows(_as_text(data).with_columns(lines)), "xlsx", facts.sha256)


def _drop_blank_rows(data: pl.DataFrame) -> pl.DataFrame:
    """Blank lines and empty spreadsheet rows hold no record: they are not rows of the frame."""
    values = [pl.col(c).is_null() for c in data.columns if c != LINE]
    return data.filter(~pl.all_horizontal(values)) if values else data


def _choose_sheet(names: list[str], *, sheet: str | None, frame: str | None, path: Path) -> str:
    """The sheet named in the mapping, else one named like the frame, else the first."""
    if sheet is not None:
        if sheet not in names:
            raise InputError(
                f"no sheet {sheet!r} in this workbook (sheets: {', '.join(names)})",
                where=str(path),
                fix="correct `sheet` in the mapping",
            )
        return sheet
    by_name = {name.strip().lower(): name for name in names}
    return by_name.get(frame or "", names[0])


def _as_text(data: pl.DataFrame) -> pl.DataFrame:
    """Typed columns (Parquet, JSON, Excel) as text that the parsers read like CSV cells."""
    columns = []
    for name, dtype in data.schema.items():
        column = pl.col(name)
        if dtype == pl.String:
            columns.append(column)
        elif dtype.is_float():
            integral = (column.round(0) == column) & (column.abs() < 2**53)
            as_int = pl.when(integral).then(column.cast(pl.Int64, strict=False)).cast(pl.String)
            columns.append(as_int.fill_null(column.cast(pl.String)).alias(name))
        elif dtype == pl.Date:
            columns.append(column.dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            fmt = "%Y-%m-%dT%H:%M:%S%:z" if dtype.time_zone else "%Y-%m-%dT%H:%M:%S"
            columns.append(column.dt.strftime(fmt))
        elif dtype.is_nested():
            encoded = pl.struct(column.alias("v")).struct.json_encode()
            columns.append(encoded.str.slice(5, encoded.str.len_chars() - 6).alias(name))
        elif dtype == pl.Null:
            columns.append(column.cast(pl.String))
        else:  # integers, decimals, booleans, categoricals
            columns.append(column.cast(pl.String))
    return data.select(columns)


def read_raw(path: Path, *, sheet: str | None = None, frame: str | None = None) -> RawTable:
    """Read one export file as text columns with `LINE`; InputError when it cannot be used."""
    fmt = file_format(path)
    if not path.exists():
        raise InputError("file not found", where=str(path), fix="check the path and file name")
    if not path.is_file():
        raise InputError("not a file", where=str(path), fix="point to a file, not a folder")
    if fmt == "csv":
        with ThreadPoolExecutor(max_workers=1) as pool:
            return _read_csv_while_hashing(path, pool)
    try:
        facts = _inspect(path, text=fmt in ("json", "ndjson"))
    except OSError as error:
        raise _unreadable(path, error) from None
    if facts.size == 0 or (fmt != "parquet" and fmt != "xlsx" and not facts.head.strip()):
        raise _empty(path)
    encoding = _encoding(facts) if fmt in ("json", "ndjson") else None
    if fmt == "json":
        if facts.head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{") and facts.newlines > 1:
            ndjson = _looks_like_ndjson(facts.head)
            if ndjson:
                return _read_ndjson(path, facts, encoding)
        return _read_json(path, facts, encoding)
    if fmt == "ndjson":
        return _read_ndjson(path, facts, encoding)
    if fmt == "parquet":
        return _read_parquet(path, facts)
    return _read_xlsx(path, facts, sheet=sheet, frame=frame)


def _looks_like_ndjson(head: bytes) -> bool:
    """A .json file whose first line is a whole JSON object is NDJSON written as .json."""
    first = head.split(b"\n", 1)[0].strip().lstrip(b"\xef\xbb\xbf")
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False
