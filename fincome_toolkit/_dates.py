"""Reading dates in every shape ERP exports use, and deciding day/month order per column.

Accepted shapes (a time part and an offset may follow any of the first three):
- ISO 8601 `2025-01-31` (also `2025/01/31`, `2025.01.31`) and compact `20250131`;
- `31/01/2025`, `01/31/2025`, with `/`, `-` or `.`, and 2-digit years (00–69 → 20xx, 70–99 →
  19xx, the POSIX pivot);
- month names in English or French: `31 Jan 2025`, `1er janvier 2025`, `Jan 31, 2025`;
- Excel serial numbers (`45658` = 2025-01-01; 18264–73050, i.e. 1950–2099);
- epoch seconds (9–10 digits) and epoch milliseconds (12–13 digits), read in UTC.

A date-time with an offset (`2025-01-31T23:30:00+02:00`) gives the calendar date *as written*
(2025-01-31, the local date of whoever wrote it), not the UTC date: a billing date is a local
calendar fact, and shifting it across midnight would move invoices between months.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fincome_toolkit._parse_core import (
    Parsed,
    ParseOptions,
    as_text,
    clean_text,
    constant,
    map_back,
    map_distinct,
)

SERIAL_MIN, SERIAL_MAX = 18264, 73050  # 1950-01-01 .. 2099-12-31 as Excel serials
YEAR_MIN, YEAR_MAX = 1900, 2199
_TIME = (
    r"(?:(?:[T\s]+|\s*,\s*)\d{1,2}[:h]\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[AaPp]\.?[Mm]\.?)?"
    r"\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?)?"
)
_ISO = rf"^(\d{{4}})[-/.](\d{{1,2}})[-/.](\d{{1,2}}){_TIME}$"
_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"
_DMY = rf"^(\d{{1,2}})[-/.](\d{{1,2}})[-/.](\d{{4}}|\d{{2}}){_TIME}$"
_DAY_NAME = r"^(\d{1,2})(?:er|st|nd|rd|th)?[\s\-./]*([^\d\s\-./,]+)\.?[\s\-./,]*(\d{4}|\d{2})$"
_NAME_DAY = r"^([^\d\s\-./,]+)\.?[\s\-./]*(\d{1,2})(?:st|nd|rd|th)?,?[\s\-./]*(\d{4})$"
_NUMBER = r"^(\d+)(?:[.,]\d+)?$"
_DISTINCT_LIMIT = 200_000  # above this many distinct values, split date and time parts first

_MONTHS = {
    **dict.fromkeys(["jan", "january", "janv", "janvier"], 1),
    **dict.fromkeys(["feb", "february", "fev", "fevr", "fevrier"], 2),
    **dict.fromkeys(["mar", "march", "mars"], 3),
    **dict.fromkeys(["apr", "april", "avr", "avril"], 4),
    **dict.fromkeys(["may", "mai"], 5),
    **dict.fromkeys(["jun", "june", "juin"], 6),
    **dict.fromkeys(["jul", "july", "juil", "juillet"], 7),
    **dict.fromkeys(["aug", "august", "aou", "aout"], 8),
    **dict.fromkeys(["sep", "sept", "september", "septembre"], 9),
    **dict.fromkeys(["oct", "october", "octobre"], 10),
    **dict.fromkeys(["nov", "november", "novembre"], 11),
    **dict.fromkeys(["dec", "december", "decembre"], 12),
}
_UNRECOGNISED = (
    "not a recognised date (expected YYYY-MM-DD, DD/MM/YYYY, MM/DD/YYYY, a month name, "
    "an Excel serial number or epoch seconds)"
)


@dataclass(frozen=True)
class DayOrderEvidence:
    """What the distinct `NN/NN/YYYY` values of a column say about day/month order."""

    day_first: int = 0  # values whose first part is > 12 (so it must be the day)
    month_first: int = 0  # values whose second part is > 12
    ambiguous: int = 0  # values that read either way
    day_first_example: str | None = None
    month_first_example: str | None = None
    ambiguous_example: str | None = None

    def decision(self) -> bool | None:
        """True/False when the values decide (the majority wins a mixed column), else None."""
        if self.day_first == self.month_first == 0:
            return None
        return self.day_first >= self.month_first


def _int(group: pl.Expr) -> pl.Expr:
    return group.cast(pl.Int64, strict=False)


def _full_year(year: pl.Expr, digits: pl.Expr) -> pl.Expr:
    return (
        pl.when(digits <= 2)
        .then(pl.when(year < 70).then(year + 2000).otherwise(year + 1900))
        .otherwise(year)
    )


def _month_number(name: pl.Expr) -> pl.Expr:
    key = (
        name.str.to_lowercase()
        .str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.replace_all(r"[^a-z]", "")
    )
    return key.replace_strict(_MONTHS, default=None, return_dtype=pl.Int64)


def _shapes(distinct: pl.Series) -> pl.DataFrame:
    """One row per distinct value: resolved (y, m, d), or ambiguous parts (p1, p2), or a number."""
    raw = pl.col("raw")
    iso, compact = raw.str.extract_groups(_ISO), raw.str.extract_groups(_COMPACT)
    dmy = raw.str.extract_groups(_DMY)
    day_name, name_day = raw.str.extract_groups(_DAY_NAME), raw.str.extract_groups(_NAME_DAY)
    dmy_year = dmy.struct.field("3")
    day_name_year = day_name.struct.field("3")
    return (
        pl.DataFrame({"raw": distinct})
        .with_columns(
            y=pl.coalesce(
                _int(iso.struct.field("1")),
                _int(compact.struct.field("1")),
                _full_year(_int(day_name_year), day_name_year.str.len_chars()),
                _int(name_day.struct.field("3")),
            ),
            m=pl.coalesce(
                _int(iso.struct.field("2")),
                _int(compact.struct.field("2")),
                _month_number(day_name.struct.field("2")),
                _month_number(name_day.struct.field("1")),
            ),
            d=pl.coalesce(
                _int(iso.struct.field("3")),
                _int(compact.struct.field("3")),
                _int(day_name.struct.field("1")),
                _int(name_day.struct.field("2")),
            ),
            p1=_int(dmy.struct.field("1")),
            p2=_int(dmy.struct.field("2")),
            py=_full_year(_int(dmy_year), dmy_year.str.len_chars()),
            number=raw.str.extract(_NUMBER, 1),
        )
        .with_columns(
            # a month-name shape whose word is not a month is not a date at all
            y=pl.when(pl.col("m").is_null()).then(None).otherwise("y"),
        )
    )


def _ymd(year: pl.Expr, month: pl.Expr, day: pl.Expr) -> pl.Expr:
    text = pl.format("{}-{}-{}", year, month, day)
    in_range = year.is_between(YEAR_MIN, YEAR_MAX)
    return pl.when(in_range).then(text.str.to_date("%Y-%m-%d", strict=False))


def _from_number(number: pl.Expr) -> pl.Expr:
    digits = number.str.len_chars()
    value = number.cast(pl.Int64, strict=False)
    serial = pl.date(1899, 12, 30) + pl.duration(days=value)
    return (
        pl.when(digits.is_between(1, 5) & value.is_between(SERIAL_MIN, SERIAL_MAX))
        .then(serial)
        .when(digits.is_between(9, 10))
        .then(pl.from_epoch(value, time_unit="s").dt.date())
        .when(digits.is_between(12, 13))
        .then(pl.from_epoch(value, time_unit="ms").dt.date())
    )


def _evidence(shapes: pl.DataFrame) -> DayOrderEvidence:
    p1, p2 = pl.col("p1"), pl.col("p2")
    kinds = shapes.filter(p1.is_not_null()).select(
        "raw",
        day=(p1 > 12) & (p2 <= 12),
        month=(p2 > 12) & (p1 <= 12),
        either=(p1 <= 12) & (p2 <= 12) & (p1 != p2),
    )

    def example(flag: str) -> str | None:
        hits = kinds.filter(pl.col(flag))["raw"]
        return hits.sort()[0] if len(hits) else None

    return DayOrderEvidence(
        day_first=int(kinds["day"].sum()),
        month_first=int(kinds["month"].sum()),
        ambiguous=int(kinds["either"].sum()),
        day_first_example=example("day"),
        month_first_example=example("month"),
        ambiguous_example=example("either"),
    )


def _resolve(shapes: pl.DataFrame, *, day_first: bool) -> pl.DataFrame:
    """Dates and failure reasons for every distinct value, given the column's day order."""
    p1, p2, py = pl.col("p1"), pl.col("p2"), pl.col("py")
    chosen = _ymd(py, p2, p1) if day_first else _ymd(py, p1, p2)
    other = _ymd(py, p1, p2) if day_first else _ymd(py, p2, p1)
    order = "DD/MM/YYYY (day first)" if day_first else "MM/DD/YYYY (month first)"
    resolved = _ymd(pl.col("y"), pl.col("m"), pl.col("d"))
    return shapes.with_columns(
        value=pl.coalesce(resolved, chosen, _from_number(pl.col("number"))),
    ).with_columns(
        reason=pl.when(pl.col("value").is_not_null() | pl.col("raw").is_null())
        .then(None)
        .when(p1.is_not_null() & other.is_not_null())
        .then(pl.lit(f"contradicts the column's day/month order, read as {order}"))
        .when(pl.col("y").is_not_null() & ~pl.col("y").is_between(YEAR_MIN, YEAR_MAX))
        .then(pl.lit(f"year outside {YEAR_MIN}–{YEAR_MAX}"))
        .when(p1.is_not_null() | pl.col("y").is_not_null())
        .then(pl.lit("not a valid calendar date"))
        .when(pl.col("number").is_not_null())
        .then(
            pl.lit(
                f"a number that is neither an Excel serial date ({SERIAL_MIN}–{SERIAL_MAX}) "
                "nor epoch seconds (10 digits) or milliseconds (13 digits)"
            )
        )
        .otherwise(pl.lit(_UNRECOGNISED))
    )


def _split_date_time(text: pl.Series) -> pl.Series:
    """For very many distinct date-times: keep the date part when the rest is a plain time."""
    head, tail = text.str.slice(0, 10), text.str.slice(10)
    tail_ok = tail.str.contains(rf"^{_TIME}$")
    return head.set(~tail_ok.fill_null(False), None).set(text.is_null(), None)


def _distinct_or_none(text: pl.Series) -> pl.Series | None:
    """The distinct non-null values, or None when there are more than parsing them one by one
    handles well (e.g. date-times to the second): one hash pass serves both purposes."""
    distinct = text.drop_nulls().unique()
    n_unique = len(distinct) + (1 if text.null_count() else 0)
    if len(text) > _DISTINCT_LIMIT and n_unique > _DISTINCT_LIMIT:
        return None
    return distinct


def _evidence_from(
    text: pl.Series, distinct: pl.Series | None, options: ParseOptions | None
) -> DayOrderEvidence:
    if distinct is None:
        distinct = _split_date_time(clean_text(text, options=options)).drop_nulls().unique()
    return _evidence(_shapes(clean_text(distinct, options=options)))


def date_order_evidence(
    values: pl.Series, *, options: ParseOptions | None = None
) -> DayOrderEvidence:
    """Count the distinct `NN/NN/YYYY` values of a column that read only day- or month-first."""
    text = as_text(values)
    return _evidence_from(text, _distinct_or_none(text), options)


def parse_dates(
    values: pl.Series, *, options: ParseOptions | None = None, day_first: bool | None = None
) -> Parsed:
    """Parse a column of dates to `pl.Date`, with a reason for every value that is not a date.

    Day/month order: `day_first` (e.g. decided for the whole file by the loader), else
    `options.day_first`, else the column's own values (`date_order_evidence`); when nothing
    decides, the column is read day-first (Fincome's template convention) and a note says so.
    """
    options = options or ParseOptions()
    text = as_text(values)
    distinct = _distinct_or_none(text)
    notes: list[str] = []
    decided = day_first if day_first is not None else options.day_first
    if decided is None:
        evidence = _evidence_from(text, distinct, options)
        decided = evidence.decision()
        if decided is None and evidence.ambiguous:
            notes.append(
                "day/month order cannot be decided: every value like "
                f"'{evidence.ambiguous_example}' reads both as DD/MM and MM/DD; read as "
                "DD/MM/YYYY (Fincome's template convention). Set day_first = true or false "
                "under [options] in the mapping (ParseOptions.day_first) to choose."
            )
    order = True if decided is None else decided

    def parse_distinct(unique_values: pl.Series) -> pl.DataFrame:
        return _resolve(_shapes(clean_text(unique_values, options=options)), day_first=order)

    if distinct is None:
        result = _parse_with_split(clean_text(text, options=options), parse_distinct)
    else:
        parsed = parse_distinct(distinct)
        result = _map_by_format(text, distinct, parsed)
        if result is None:
            result = map_back(text, distinct, parsed, _RESULT_DTYPES)
    return Parsed(
        values=result["value"].alias(values.name),
        reasons=result["reason"].alias(values.name),
        notes=tuple(notes),
    )


_RESULT_DTYPES = {"value": pl.Date(), "reason": pl.String()}
_FAST_FORMAT = "%Y-%m-%d"  # canonical exports: polars' native reader, when it agrees


def _map_by_format(
    text: pl.Series, distinct: pl.Series, parsed: pl.DataFrame
) -> pl.DataFrame | None:
    """Every row's date read natively with `_FAST_FORMAT`, when that gives the full parse's date
    for each distinct value (so for each row too); None otherwise. Cheaper than looking every row
    up in the table of distinct values: only the rows left null fetch their failure reason."""
    if len(distinct) == 0:
        return None
    if not distinct.str.to_date(_FAST_FORMAT, strict=False).eq_missing(parsed["value"]).all():
        return None
    values = text.str.to_date(_FAST_FORMAT, strict=False)
    rows = (values.is_null() & text.is_not_null()).arg_true()
    reasons = text.gather(rows).replace_strict(
        distinct, parsed["reason"], default=None, return_dtype=pl.String
    )
    return pl.DataFrame(
        {
            "value": values,
            "reason": constant(None, len(text), dtype=pl.String).scatter(rows, reasons),
        }
    )


def _parse_with_split(text: pl.Series, parse_distinct) -> pl.DataFrame:
    """Many distinct date-times: parse the date parts first, then the rest one by one."""
    heads = _split_date_time(text)
    first = map_distinct(heads, parse_distinct, _RESULT_DTYPES)
    redo = text.is_not_null() & first["value"].is_null()
    if not redo.any():
        return first
    rest = map_distinct(text.set(~redo, None), parse_distinct, _RESULT_DTYPES)
    return pl.DataFrame(
        {
            "value": first["value"].set(redo, None).fill_null(rest["value"]),
            "reason": rest["reason"],
        }
    )
