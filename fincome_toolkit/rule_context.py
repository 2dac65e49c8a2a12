"""What every rule receives: the indexed canonical frames, the audit date, the tolerances, and the
derived frames several rules share, computed once on first use.

Built for 10M invoices in a few GB: the invoice → subscription link is one column of subscription
row numbers (`_sub_row`), not a wide joined copy; a rule gathers the few subscription fields it
needs, after filtering when it can. Service periods are kept as narrow integer/date columns and
ids are fetched by row number only for the offending rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import cached_property

import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.rule_base import (
    ROW,
    RuleOptions,
    calendar_months,
    is_recurring,
    running_after_group_start,
    whole_months,
)

SUB_ROW = "_sub_row"  # the invoice's subscription, as a row number of the subscriptions frame


@dataclass(frozen=True)
class RuleContext:
    """The canonical frames (each with a `_row` index column), the audit date and tolerances."""

    customers: pl.DataFrame
    subscriptions: pl.DataFrame
    invoices: pl.DataFrame
    as_of: dt.date
    options: RuleOptions = field(default_factory=RuleOptions)

    @classmethod
    def from_dataset(
        cls, dataset: frames.Dataset, *, as_of: dt.date, options: RuleOptions | None = None
    ) -> RuleContext:
        """A context over `dataset`, adding the `_row` index to every frame."""
        indexed = {name: df.with_row_index(ROW) for name, df in dataset.frames().items()}
        return cls(**indexed, as_of=as_of, options=options or RuleOptions())

    def frame(self, name: str) -> pl.DataFrame:
        """The indexed frame called `name`."""
        return getattr(self, name)

    @cached_property
    def customer_ids(self) -> pl.Series:
        """Distinct non-null customer ids."""
        return self.customers["id"].drop_nulls().unique()

    @cached_property
    def repeated_rows(self) -> dict[str, pl.DataFrame]:
        """Per frame, the rows whose id appears more than once.

        Ids are hashed to 64-bit integers and sorted: equal neighbours are candidates, confirmed
        on the exact text. Several times faster than hashing millions of strings in a table.
        """
        repeated = {}
        for name in frames.FRAME_NAMES:
            frame = self.frame(name).filter(pl.col("id").is_not_null())
            hashed = frame.select(ROW, _hash=pl.col("id").hash()).sort("_hash")
            same = pl.col("_hash")
            candidates = hashed.filter((same == same.shift(1)) | (same == same.shift(-1)))
            rows = frame.filter(pl.col(ROW).is_in(candidates[ROW].implode()))
            repeated[name] = rows.filter(pl.col("id").is_duplicated())
        return repeated

    @cached_property
    def subscriptions_by_id(self) -> pl.DataFrame:
        """One subscription per id (the first row when an id repeats; SUB-002 reports those)."""
        return self.subscriptions.filter(pl.col("id").is_not_null()).unique(
            "id", keep="first", maintain_order=True
        )

    @cached_property
    def invoice_sub_rows(self) -> pl.Series:
        """For each invoice, the row of its subscription (null when the id is unknown or empty)."""
        mapping = self.subscriptions_by_id.select(subscription_id="id", **{SUB_ROW: ROW})
        linked = self.invoices.select("subscription_id").join(
            mapping, on="subscription_id", how="left", maintain_order="left"
        )
        return linked[SUB_ROW]

    def linked_invoices(self, *columns: str) -> pl.DataFrame:
        """`_row`, the given invoice columns and `_sub_row`."""
        return self.invoices.select(ROW, *columns).with_columns(self.invoice_sub_rows)

    def with_subscription(self, rows: pl.DataFrame, *fields: str) -> pl.DataFrame:
        """`rows` (with `_sub_row`) plus the subscription's `fields`, named `sub_<field>`."""
        return rows.with_columns(
            self.subscriptions[f].gather(rows[SUB_ROW]).alias(f"sub_{f}") for f in fields
        )

    def with_invoice(self, rows: pl.DataFrame, *fields: str, row: str = ROW) -> pl.DataFrame:
        """`rows` plus the invoice fields of the invoice at `row`, named `inv_<field>`."""
        return rows.with_columns(
            self.invoices[f].gather(rows[row]).alias(f"inv_{f}") for f in fields
        )

    @cached_property
    def periods(self) -> pl.DataFrame:
        """Usable service periods of recurring invoices of known subscriptions, one per invoice
        id and period, in sequence order per subscription: `_row, _sub_row, period_start,
        period_end`, plus `prev_end`, the latest end among the earlier periods (a period inside an
        older, longer one still overlaps), and `prev_row`, the invoice holding it.
        """
        keys = [SUB_ROW, "period_start", "period_end"]
        usable = (
            self.linked_invoices("type", "period_start", "period_end")
            .lazy()
            .filter(
                is_recurring(),
                pl.col(SUB_ROW).is_not_null(),
                pl.col("period_start") < pl.col("period_end"),
            )
            .select(ROW, *keys)
            .collect()
        )
        # a stable sort of narrow numeric rows keeps ties in file order: no string sort key
        ordered = usable.sort(_packed_period_key(usable), maintain_order=True)
        # an invoice repeated with the same period is INV-002's business, not an overlap
        ordered = ordered.filter(~self._same_invoice_as_previous(ordered, keys))
        return ordered.with_columns(
            running_after_group_start(SUB_ROW, "period_end", ROW, "prev_end", "prev_row")
        )

    def _same_invoice_as_previous(self, ordered: pl.DataFrame, keys: list[str]) -> pl.Series:
        """True where a sorted row repeats the previous one's `keys` and invoice id. Ids are
        fetched only where the keys repeat (a few rows), not carried through the sort."""
        same_keys = ordered.select(
            pl.all_horizontal([pl.col(k).eq_missing(pl.col(k).shift(1)) for k in keys])
        ).to_series()
        at = same_keys.arg_true()
        ids, rows = self.invoices["id"], ordered[ROW]
        same_id = ids.gather(rows.gather(at)).eq_missing(ids.gather(rows.gather(at - 1)))
        return pl.repeat(False, ordered.height, eager=True).scatter(at, same_id)

    @cached_property
    def inclusive_end_subscriptions(self) -> pl.DataFrame:
        """Subscriptions whose invoices consistently use inclusive period ends: each period ends the
        day before the next one starts and none already spans whole months (with a single
        period: it ends one day short of a whole number of months).
        Columns: _sub_row, periods, first_start, first_end."""
        per_subscription = (
            self.periods.lazy()
            .group_by(SUB_ROW)
            .agg(
                periods=pl.len(),
                all_day_before_next=(
                    (pl.col("period_start") - pl.col("prev_end")) == pl.duration(days=1)
                )
                .drop_nulls()
                .all(),
                first_start=pl.col("period_start").first(),
                first_end=pl.col("period_end").first(),
            )
            .filter(pl.col("all_day_before_next") | (pl.col("periods") == 1))
            .collect()
        )
        # month arithmetic only on the candidates: it is the costly part
        start, end = pl.col("period_start"), pl.col("period_end")
        exact, plus_one = whole_months(start, end), whole_months(start, end + pl.duration(days=1))
        shapes = (
            self.periods.filter(pl.col(SUB_ROW).is_in(per_subscription[SUB_ROW].implode()))
            .group_by(SUB_ROW)
            .agg(any_whole=(exact & ~plus_one).any(), all_one_day_short=(plus_one & ~exact).all())
        )
        return (
            per_subscription.join(shapes, on=SUB_ROW)
            .filter(
                pl.when(pl.col("periods") >= 2)
                .then(~pl.col("any_whole"))
                .otherwise(pl.col("all_one_day_short"))
            )
            .select(SUB_ROW, "periods", "first_start", "first_end")
            .sort(SUB_ROW)
        )

    @cached_property
    def billed_periods(self) -> pl.DataFrame:
        """`periods` with `_end` (the exclusive end: period_end, plus one day for inclusive-end
        subscriptions), `_days`, `_whole_months` and `_months` (calendar months, see
        `rule_base.calendar_months`)."""
        inclusive = self.inclusive_end_subscriptions[SUB_ROW].implode()
        end = (
            pl.when(pl.col(SUB_ROW).is_in(inclusive))
            .then(pl.col("period_end") + pl.duration(days=1))
            .otherwise(pl.col("period_end"))
        )
        periods = (
            self.periods.lazy()
            .select(ROW, SUB_ROW, "period_start", "period_end", _end=end)
            .with_columns(
                _days=(pl.col("_end") - pl.col("period_start")).dt.total_days().cast(pl.Int32)
            )
            .collect()
        )
        start, stop = pl.col("period_start"), pl.col("_end")
        return _per_distinct_pair(
            periods,
            "period_start",
            "_end",
            _whole_months=whole_months(start, stop),
            _months=calendar_months(start, stop),
        )


def _packed_period_key(periods: pl.DataFrame) -> pl.Expr | list[str]:
    """One 64-bit integer ordering `periods` like (subscription row, start, end), or the three
    columns when they do not fit: sorting one integer is several times faster than a multi-column
    sort (polars row-encodes multi-column keys). Days are offset from the earliest date."""
    keys = [SUB_ROW, "period_start", "period_end"]
    if periods.height == 0:
        return keys
    days = periods.select(
        low=pl.min_horizontal(pl.col("period_start").min(), pl.col("period_end").min()),
        high=pl.max_horizontal(pl.col("period_start").max(), pl.col("period_end").max()),
        last_row=pl.col(SUB_ROW).max(),
    ).select(pl.col("low", "high").cast(pl.Int32).cast(pl.Int64), "last_row")
    low, high, last_row = days.row(0)
    day_bits = (high - low).bit_length()
    if int(last_row).bit_length() + 2 * day_bits > 62:
        return keys
    offset = {name: pl.col(name).cast(pl.Int32).cast(pl.Int64) - low for name in keys[1:]}
    return (
        pl.col(SUB_ROW).cast(pl.Int64) * (1 << (2 * day_bits))
        + offset["period_start"] * (1 << day_bits)
        + offset["period_end"]
    )


def _per_distinct_pair(
    frame: pl.DataFrame, start: str, end: str, **columns: pl.Expr
) -> pl.DataFrame:
    """`frame` plus `columns` (expressions of the dates `start` and `end`), evaluated once per
    distinct (start, end) pair: periods repeat (monthly billing gives a few thousand pairs for a
    million invoices) and calendar arithmetic per row costs far more than a join on one integer."""
    key = (pl.col(start).cast(pl.Int64) * (1 << 32) + pl.col(end).cast(pl.Int64)).alias("_pair")
    keyed = frame.with_columns(key)
    pairs = keyed.select("_pair", start, end).unique("_pair").select("_pair", **columns)
    return keyed.join(pairs, on="_pair", how="left", maintain_order="left").drop("_pair")
