"""Safe mechanical fixes, applied only when asked, each change logged (before → after).

The audit never changes data. `apply_fixes` is the separate, explicit step for defects with one
obviously right correction: whitespace around ids, lower-case ISO codes, status spellings the
loader did not know, inclusive period ends, exact duplicate rows. Anything needing judgement
(which of two conflicting rows is right, what a missing date should be) stays in the ERP.

    fixed = apply_fixes(dataset, status_synonyms={"litige": "unpaid"})
    fixed.changes            # frame, record_id, file, line, column, before, after, fix
    audit(fixed.dataset)     # no longer reports what was fixed
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.parsing import (
    ParseOptions,
    parse_invoice_statuses,
    parse_subscription_statuses,
)
from fincome_toolkit.rule_base import ROW, fmt
from fincome_toolkit.rule_context import SUB_ROW, RuleContext

CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "frame": pl.String(),
    "record_id": pl.String(),
    "file": pl.String(),
    "line": pl.Int64(),
    "column": pl.String(),
    "before": pl.String(),
    "after": pl.String(),
    "fix": pl.String(),
}
ID_COLUMNS = ("id", "customer_id", "subscription_id", "root_parent_id", "plan_id")
CODE_COLUMNS = ("currency", "country")
REMOVED = "(row removed)"


@dataclass(frozen=True)
class FixOptions:
    """What some fixes need to know: extra status spellings (raw text → canonical status)."""

    status_synonyms: Mapping[str, str] = dataclasses.field(default_factory=dict)


FixFunction = Callable[[frames.Dataset, FixOptions], tuple[frames.Dataset, pl.DataFrame]]


@dataclass(frozen=True)
class Fix:
    """One named mechanical fix: what it does, and the function doing it."""

    name: str
    description: str
    apply: FixFunction = dataclasses.field(repr=False, compare=False)


@dataclass(frozen=True)
class FixResult:
    """The fixed dataset and the log of every change (`CHANGE_SCHEMA`)."""

    dataset: frames.Dataset
    changes: pl.DataFrame

    def summary(self) -> pl.DataFrame:
        """Changes per fix and frame."""
        return self.changes.group_by("fix", "frame", maintain_order=True).agg(changes=pl.len())


def _log(frame_name: str, rows: pl.DataFrame, column: str, before: str, after: str, fix: str):
    """Change rows from a frame holding the record's provenance and the two values."""
    return rows.select(
        frame=pl.lit(frame_name),
        record_id=pl.col("id"),
        file=pl.col(frames.SOURCE_FILE),
        line=pl.col(frames.SOURCE_LINE),
        column=pl.lit(column),
        before=pl.col(before).cast(pl.String),
        after=pl.col(after).cast(pl.String),
        fix=pl.lit(fix),
    )


def _rewrite_columns(
    dataset: frames.Dataset,
    columns: tuple[str, ...],
    transform: Callable[[pl.Expr], pl.Expr],
    fix: str,
) -> tuple[frames.Dataset, pl.DataFrame]:
    """Apply `transform` to every listed column present in each frame, logging changed values."""
    updated, logs = {}, []
    for name, frame in dataset.frames().items():
        present = [c for c in columns if c in frames.FIELDS[name]]
        for column in present:
            after = transform(pl.col(column))
            changed = frame.with_columns(_after=after).filter(
                pl.col(column).ne_missing(pl.col("_after"))
            )
            logs.append(_log(name, changed, column, column, "_after", fix))
        updated[name] = frame.with_columns([transform(pl.col(c)).alias(c) for c in present])
    return dataclasses.replace(dataset, **updated), pl.concat(logs)


def _trim_ids(dataset: frames.Dataset, options: FixOptions) -> tuple[frames.Dataset, pl.DataFrame]:
    def trim(column: pl.Expr) -> pl.Expr:
        stripped = column.str.strip_chars()
        return pl.when(stripped == "").then(None).otherwise(stripped)

    return _rewrite_columns(dataset, ID_COLUMNS, trim, "trim_ids")


def _code_case(dataset: frames.Dataset, options: FixOptions) -> tuple[frames.Dataset, pl.DataFrame]:
    return _rewrite_columns(
        dataset, CODE_COLUMNS, lambda c: c.str.strip_chars().str.to_uppercase(), "code_case"
    )


_STATUS_PARSERS = {"invoices": parse_invoice_statuses, "subscriptions": parse_subscription_statuses}


def _status_synonyms(
    dataset: frames.Dataset, options: FixOptions
) -> tuple[frames.Dataset, pl.DataFrame]:
    """Statuses the loader could not read, read again with the extra spellings given."""
    parse_options = ParseOptions(status_synonyms=dict(options.status_synonyms))
    issues = dataset.parse_issues.with_row_index("_issue")
    updated, logs, resolved = {}, [], []
    for name, parse in _STATUS_PARSERS.items():
        unread = issues.filter(pl.col("frame") == name, pl.col("column") == "status")
        parsed = parse(unread["raw_value"], options=parse_options).values
        readable = unread.with_columns(_status=parsed).filter(pl.col("_status").is_not_null())
        frame = dataset.frame(name).with_row_index(ROW)
        targets = frame.join(
            readable.select("file", "line", "raw_value", "_status", "_issue"),
            left_on=[frames.SOURCE_FILE, frames.SOURCE_LINE],
            right_on=["file", "line"],
        ).filter(pl.col("status").is_null())
        logs.append(_log(name, targets, "status", "raw_value", "_status", "status_synonyms"))
        resolved.append(targets["_issue"])
        fixed_status = frame.join(targets.select(ROW, "_status"), on=ROW, how="left")
        updated[name] = (
            fixed_status.with_columns(status=pl.coalesce("status", "_status"))
            .select(frame.columns)
            .drop(ROW)
        )
    done = pl.concat(resolved).implode()
    remaining = issues.filter(~pl.col("_issue").is_in(done)).drop("_issue")
    fixed = dataclasses.replace(dataset, **updated, parse_issues=remaining)
    return fixed, pl.concat(logs)


def _inclusive_end_periods(
    dataset: frames.Dataset, options: FixOptions
) -> tuple[frames.Dataset, pl.DataFrame]:
    """+1 day on period_end of the invoices of subscriptions that use inclusive ends throughout."""
    ctx = RuleContext.from_dataset(dataset, as_of=dt.date.today())
    inclusive = ctx.inclusive_end_subscriptions[SUB_ROW].implode()
    rows = ctx.periods.filter(pl.col(SUB_ROW).is_in(inclusive))[ROW].implode()
    invoices = ctx.invoices.with_columns(
        _after=pl.when(pl.col(ROW).is_in(rows))
        .then(pl.col("period_end") + pl.duration(days=1))
        .otherwise(pl.col("period_end"))
    )
    changed = invoices.filter(pl.col("period_end") != pl.col("_after"))
    log = _log("invoices", changed, "period_end", "period_end", "_after", "inclusive_end_periods")
    fixed = invoices.with_columns(period_end=pl.col("_after")).drop(ROW, "_after")
    return dataclasses.replace(dataset, invoices=fixed), log


def _exact_duplicates(
    dataset: frames.Dataset, options: FixOptions
) -> tuple[frames.Dataset, pl.DataFrame]:
    """Drop rows identical to an earlier row on every canonical field (provenance aside)."""
    updated, logs = {}, []
    for name, frame in dataset.frames().items():
        fields = list(frames.FIELDS[name])
        first_line = pl.col(frames.SOURCE_LINE).first().over(fields).cast(pl.String)
        repeats = (
            frame.with_columns(_first_line=first_line)
            .filter(~pl.struct(fields).is_first_distinct())
            .with_columns(
                _before=fmt("duplicate of line {}", pl.col("_first_line").fill_null("?")),
                _after=pl.lit(REMOVED),
            )
        )
        logs.append(_log(name, repeats, "*", "_before", "_after", "exact_duplicates"))
        updated[name] = frame.filter(pl.struct(fields).is_first_distinct())
    return dataclasses.replace(dataset, **updated), pl.concat(logs)


TRIM_IDS = Fix(
    "trim_ids", "Trim spaces around ids (an id of only spaces becomes empty).", _trim_ids
)
CODE_CASE = Fix("code_case", "Upper-case and trim currency and country codes.", _code_case)
STATUS_SYNONYMS = Fix(
    "status_synonyms",
    "Read again the statuses the loader did not know, with the extra spellings given.",
    _status_synonyms,
)
INCLUSIVE_END_PERIODS = Fix(
    "inclusive_end_periods",
    "Add one day to period_end for subscriptions whose invoices consistently end the day before "
    "the next period starts.",
    _inclusive_end_periods,
)
EXACT_DUPLICATES = Fix(
    "exact_duplicates", "Remove rows identical to an earlier row on every field.", _exact_duplicates
)
# Order matters: ids and codes are cleaned before duplicates are compared.
ALL_SAFE_FIXES: tuple[Fix, ...] = (
    TRIM_IDS,
    CODE_CASE,
    STATUS_SYNONYMS,
    INCLUSIVE_END_PERIODS,
    EXACT_DUPLICATES,
)


def apply_fixes(
    dataset: frames.Dataset,
    *,
    fixes: tuple[Fix, ...] = ALL_SAFE_FIXES,
    status_synonyms: Mapping[str, str] | None = None,
) -> FixResult:
    """Apply `fixes` in order and return the fixed dataset with the log of every change."""
    options = FixOptions(status_synonyms=dict(status_synonyms or {}))
    logs = [pl.DataFrame(schema=CHANGE_SCHEMA)]
    for fix in fixes:
        dataset, log = fix.apply(dataset, options)
        logs.append(log.select([pl.col(c).cast(t) for c, t in CHANGE_SCHEMA.items()]))
    return FixResult(dataset=dataset, changes=pl.concat(logs))
