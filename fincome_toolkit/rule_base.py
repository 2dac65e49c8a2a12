"""What a rule is, what it receives, and the small polars helpers the rule modules share.

A rule is an immutable declaration (code, frame, severity, title, why, fix, unit) plus a function
taking a `RuleContext` and returning the offending rows of its frame as a (Lazy)Frame with the
columns of `RULE_OUTPUT`: `_row` (the row index of the judged frame, which the engine joins back to
the record's id, file and line), `column`, `value`, `message`, and `unit` when the rule counts
something else than rows (e.g. subscriptions for period-sequence rules).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from fincome_toolkit import frames

if TYPE_CHECKING:  # the context module imports this one
    from fincome_toolkit.rule_context import RuleContext

ROW = "_row"
SEVERITIES = ("info", "warning", "error")  # in increasing order of gravity
RULE_OUTPUT: dict[str, pl.DataType] = {
    ROW: pl.UInt32(),
    "column": pl.String(),
    "value": pl.String(),
    "message": pl.String(),
    "unit": pl.String(),
}
FAR_FUTURE = dt.date(9999, 12, 31)  # stands for "open-ended" when comparing end dates
AVERAGE_MONTH_DAYS = 365.25 / 12
# Days of years 1..9999 fit in (-2**22, 2**22): shifted by 2**22, a stride of 2**23 keeps
# groups apart (see running_after_group_start).
_DAY_SHIFT = 1 << 22
_GROUP_STRIDE = 1 << 23


@dataclass(frozen=True)
class RuleOptions:
    """Tolerances of the rules that need one; every default is a judgement call, so a setting."""

    amount_tolerance: float = 0.20  # relative distance from the expected price before flagging
    issue_date_window_days: int = 45  # how far outside its period an invoice may be issued


CheckFunction = Callable[["RuleContext"], pl.LazyFrame | pl.DataFrame]


@dataclass(frozen=True)
class Rule:
    """One catalog entry. `check` is None for rules implemented by the pandera schemas."""

    code: str
    frame: str  # the frame whose records the issues point at ("all" for parse issues)
    severity: str  # default severity: error | warning | info
    title: str
    why: str  # why it matters for Fincome's numbers
    fix: str  # how to fix it in the ERP
    unit: str  # what `checked`/`failed` count: the frame's rows, or e.g. "subscriptions"
    check: CheckFunction | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.code}: unknown severity {self.severity!r}")

    @property
    def counts_rows(self) -> bool:
        """True when the rule counts rows of its own frame (failed = distinct failing rows)."""
        return self.unit in (self.frame, "rows")


def rule(
    code: str, frame: str, severity: str, *, title: str, why: str, fix: str, unit: str | None = None
) -> Callable[[CheckFunction], Rule]:
    """Decorator turning a check function into a `Rule` with its declaration next to it."""

    def wrap(check: CheckFunction) -> Rule:
        return Rule(code, frame, severity, title, why, fix, unit or frame, check)

    return wrap


# ---------------------------------------------------------------------------------------------
# Expression helpers


def running_after_group_start(
    group: str | list[str], end: str, key: str, end_name: str, key_name: str
) -> list[pl.Expr]:
    """On a frame sorted by `group`: the latest `end` (a date) among the *earlier* rows of each
    row's group, and the `key` of the row holding it, named `end_name`/`key_name` (null on a
    group's first row).

    Window functions over millions of small groups are slow; on sorted rows a running max per
    group is a global running max of (group number, day), which is one pass.
    """
    columns = [group] if isinstance(group, str) else group
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(c).shift(1)) for c in columns])
    number = changed.fill_null(True).cast(pl.Int64).cum_sum()
    first_in_group = (number != number.shift(1)).fill_null(True)
    day = pl.col(end).cast(pl.Int64) + _DAY_SHIFT
    offset = number * _GROUP_STRIDE
    running = ((offset + day).cum_max() - offset - _DAY_SHIFT).cast(pl.Int32).cast(pl.Date)
    # the row holding the running end; a group's first row always holds it, so the forward fill
    # never crosses groups
    holder = pl.when(pl.col(end) == running).then(pl.col(key)).forward_fill()
    return [
        pl.when(~first_in_group).then(running.shift(1)).alias(end_name),
        pl.when(~first_in_group).then(holder.shift(1)).alias(key_name),
    ]


def fmt(template: str, *args: pl.Expr | str) -> pl.Expr:
    """Like `pl.format` (each `{}` takes the next argument, a column name or an expression; a null
    argument nulls the result) built on `concat_str`: polars 2.1's `format` panics on some sliced
    string columns."""
    pieces = template.split("{}")
    if len(pieces) != len(args) + 1:
        raise ValueError(f"{template!r} has {len(pieces) - 1} placeholders for {len(args)} values")
    parts: list[pl.Expr] = []
    for piece, arg in zip(pieces, [*args, None], strict=True):
        if piece:
            parts.append(pl.lit(piece))
        if arg is not None:
            parts.append((pl.col(arg) if isinstance(arg, str) else arg).cast(pl.String))
    return pl.concat_str(parts)


def text(expr: pl.Expr | str) -> pl.Expr:
    """A value as text for messages, "(empty)" when null (pl.format would null the whole text)."""
    column = pl.col(expr) if isinstance(expr, str) else expr
    return column.cast(pl.String).fill_null("(empty)")


def quoted(expr: pl.Expr | str) -> pl.Expr:
    """A value as text between single quotes, or (empty)."""
    column = pl.col(expr) if isinstance(expr, str) else expr
    return (
        pl.when(column.is_null())
        .then(pl.lit("(empty)"))
        .otherwise(fmt("'{}'", column.cast(pl.String)))
    )


def is_recurring() -> pl.Expr:
    """Invoices that carry recurring revenue: type `subscription` (a missing type counts too)."""
    return pl.col("type").is_null() | (pl.col("type") == "subscription")


def calendar_months(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """Calendar months from `start`'s month to `end`'s month (Jan 31 → Feb 28 is 1)."""
    return (end.dt.year().cast(pl.Int64) * 12 + end.dt.month()) - (
        start.dt.year().cast(pl.Int64) * 12 + start.dt.month()
    )


def whole_months(start: pl.Expr, end: pl.Expr) -> pl.Expr:
    """True when [start, end) is a whole number (>= 1) of calendar months.

    Month arithmetic clips to month ends (`dt.offset_by("1mo")`: Jan 31 → Feb 28/29). A period
    anchored on the 29th-31st keeps its anchor after a short month (Feb 28 → Mar 31 is one month
    of a 31st-anchored subscription), so a start on a month's last day accepts any end whose day
    is not earlier.
    """
    months = calendar_months(start, end)
    # start + months, clipped to the month end like offset_by("<n>mo"), without string offsets
    exact = end.dt.day() == pl.min_horizontal(start.dt.day(), end.dt.days_in_month())
    from_month_end = (start.dt.day() == start.dt.days_in_month()) & (end.dt.day() >= start.dt.day())
    return (months >= 1) & (exact | from_month_end)


def interval_months(unit: pl.Expr, count: pl.Expr) -> pl.Expr:
    """Months in one billing interval (null for day and week intervals)."""
    per_unit = pl.when(unit == "month").then(1).when(unit == "year").then(12)
    return (per_unit * count).cast(pl.Float64)


def interval_days(unit: pl.Expr, count: pl.Expr) -> pl.Expr:
    """Days in one billing interval for day and week intervals (null for month and year)."""
    per_unit = pl.when(unit == "day").then(1).when(unit == "week").then(7)
    return (per_unit * count).cast(pl.Float64)


def offending(
    rows: pl.LazyFrame | pl.DataFrame,
    *,
    column: str | pl.Expr,
    value: pl.Expr | str,
    message: pl.Expr,
    unit: pl.Expr | None = None,
) -> pl.LazyFrame:
    """Shape the offending rows of a rule into `RULE_OUTPUT` (`column` is a name or an
    expression giving the name per row)."""
    return rows.lazy().select(
        pl.col(ROW),
        column=pl.lit(column) if isinstance(column, str) else column,
        value=(pl.col(value) if isinstance(value, str) else value).cast(pl.String),
        message=message,
        unit=(unit if unit is not None else pl.lit(None)).cast(pl.String),
    )


_LISTED_LINES = 10  # lines listed in a duplicate-id message; the rest are counted


def _lines_of_id() -> pl.Expr:
    lines = pl.col(frames.SOURCE_LINE).sort()
    listed = lines.head(_LISTED_LINES).cast(pl.String).fill_null("?").str.join(", ")
    more = pl.len().cast(pl.Int64) - _LISTED_LINES
    return pl.when(more > 0).then(fmt("{} and {} more", listed, more)).otherwise(listed).over("id")


def unknown_customers(ctx: RuleContext, name: str) -> pl.LazyFrame:
    """Rows of frame `name` whose `customer_id` is not in the customers file."""
    rows = getattr(ctx, name).filter(
        pl.col("customer_id").is_not_null()
        & ~pl.col("customer_id").is_in(ctx.customer_ids.implode())
    )
    return offending(
        rows,
        column="customer_id",
        value="customer_id",
        message=fmt("customer '{}' is not in the customers file", "customer_id"),
    )


def repeated_ids(ctx: RuleContext, name: str) -> pl.LazyFrame:
    """Every row of an id that appears on several rows of frame `name`."""
    return (
        ctx.repeated_rows[name]
        .lazy()
        .with_columns(_lines=_lines_of_id(), _count=pl.len().over("id"))
        .pipe(
            offending,
            column="id",
            value="id",
            message=fmt("id '{}' appears on {} rows (lines {})", "id", "_count", "_lines"),
        )
    )


def conflicting_duplicates(ctx: RuleContext, name: str, *, label: str) -> pl.LazyFrame:
    """Rows of an id that repeats with different values in at least one canonical field of the
    frame `name`: `column` lists the disagreeing fields, `value` this row's values for them."""
    fields = [f for f in frames.FIELDS[name] if f != "id"]
    differs = {f: pl.col(f).n_unique().over("id") > 1 for f in fields}
    differing = pl.concat_str(
        [pl.when(expr).then(pl.lit(f)) for f, expr in differs.items()],
        separator=", ",
        ignore_nulls=True,
    )
    values = pl.concat_str(
        [pl.when(expr).then(fmt("{}={}", pl.lit(f), text(f))) for f, expr in differs.items()],
        separator="; ",
        ignore_nulls=True,
    )
    return (
        ctx.repeated_rows[name]
        .lazy()
        .with_columns(_differing=differing, _values=values, _lines=_lines_of_id())
        .filter(pl.col("_differing") != "")
        .select(
            pl.col(ROW),
            column=pl.col("_differing"),
            value=pl.col("_values"),
            message=fmt(
                "{} id '{}' appears on {} rows (lines {}) that disagree on {}",
                pl.lit(label),
                pl.col("id"),
                pl.len().over("id"),
                pl.col("_lines"),
                pl.col("_differing"),
            ),
            unit=pl.lit(None, pl.String),
        )
    )
