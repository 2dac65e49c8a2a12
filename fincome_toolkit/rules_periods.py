"""Service-period rules: how the invoices of one subscription cover time (domain notes §2 and §4).

Periods are half-open, `[period_start, period_end)`: the next period starts on the previous end.
An export using inclusive ends (`2025-01-01 → 2025-01-31`, next `2025-02-01`) is recognised per
subscription; its one-day "gaps" and short months are then reported once, by INV-014.
"""

from __future__ import annotations

import polars as pl

from fincome_toolkit.rule_base import (
    AVERAGE_MONTH_DAYS,
    ROW,
    Rule,
    fmt,
    interval_days,
    interval_months,
    offending,
    rule,
)
from fincome_toolkit.rule_context import SUB_ROW, RuleContext

SEQUENCE_UNIT = "invoiced subscriptions"


def _not_inclusive(ctx: RuleContext, periods: pl.DataFrame) -> pl.DataFrame:
    return periods.join(ctx.inclusive_end_subscriptions, on=SUB_ROW, how="anti")


def _period_text() -> pl.Expr:
    return fmt("{} → {}", "period_start", "period_end")


@rule(
    "INV-010",
    "invoices",
    "warning",
    title="Service period outside the subscription's dates",
    why="Invoice-based and subscription-based MRR then disagree: the invoice bills months the "
    "subscription does not cover, so MRR appears before the start or after the churn.",
    fix="Correct the invoice's period or the subscription's start_date/end_date.",
)
def period_outside_subscription(ctx: RuleContext) -> pl.LazyFrame:
    periods = ctx.with_subscription(ctx.billed_periods, "start_date", "end_date")
    start, end = pl.col("sub_start_date"), pl.col("sub_end_date")
    # a subscription whose own dates are reversed is SUB-005's; its invoices cannot be judged
    sound = end.is_null() | (start < end)
    rows = periods.filter(sound, (pl.col("period_start") < start) | (pl.col("_end") > end))
    return offending(
        ctx.with_subscription(rows, "id"),
        column=pl.when(pl.col("period_start") < start)
        .then(pl.lit("period_start"))
        .otherwise(pl.lit("period_end")),
        value=_period_text(),
        message=fmt(
            "period {} is outside subscription '{}' ({} → {})",
            _period_text(),
            "sub_id",
            "sub_start_date",
            end.cast(pl.String).fill_null("open-ended"),
        ),
    )


@rule(
    "INV-012",
    "invoices",
    "warning",
    title="Gap between consecutive periods of a subscription",
    why="A month without a billed period shows as churn followed by reactivation, inflating both "
    "movements; Fincome can neutralise it only when the invoices share the subscription.",
    fix="Check for a missing invoice, or a period that should end on the next one's start.",
    unit=SEQUENCE_UNIT,
)
def period_gap(ctx: RuleContext) -> pl.LazyFrame:
    gaps = _not_inclusive(ctx, ctx.periods.filter(pl.col("period_start") > pl.col("prev_end")))
    return offending(
        ctx.with_invoice(gaps, "id", row="prev_row"),
        column="period_start",
        value=_period_text(),
        message=fmt(
            "period {} starts {} days after the previous one (invoice '{}') ended {}",
            _period_text(),
            (pl.col("period_start") - pl.col("prev_end")).dt.total_days(),
            "inv_id",
            "prev_end",
        ),
        unit=pl.col(SUB_ROW),
    )


@rule(
    "INV-013",
    "invoices",
    "error",
    title="Overlap between consecutive periods of a subscription",
    why="Two invoices billing the same days of one subscription double count its MRR for those "
    "months.",
    fix="Credit the duplicate billing, or correct the periods so each starts on the previous end.",
    unit=SEQUENCE_UNIT,
)
def period_overlap(ctx: RuleContext) -> pl.LazyFrame:
    overlaps = ctx.periods.filter(pl.col("period_start") < pl.col("prev_end"))
    return offending(
        ctx.with_invoice(overlaps, "id", row="prev_row"),
        column="period_start",
        value=_period_text(),
        message=fmt(
            "period {} overlaps the previous one (invoice '{}') ending {}",
            _period_text(),
            "inv_id",
            "prev_end",
        ),
        unit=pl.col(SUB_ROW),
    )


@rule(
    "INV-014",
    "subscriptions",
    "warning",
    title="Invoices use inclusive period ends",
    why="Fincome reads period_end as exclusive: a period ending on the 31st loses a day, every "
    "month looks prorated and consecutive periods show one-day gaps.",
    fix="Export period_end as the first day after the service (apply_fixes adds the day).",
)
def inclusive_end_periods(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.inclusive_end_subscriptions.with_columns(pl.col(SUB_ROW).alias(ROW))
    return offending(
        rows,
        column="period_end",
        value=fmt("{} → {}", "first_start", "first_end"),
        message=fmt(
            "its {} invoice period(s) end the day before the next starts (first {} → {}): add "
            "one day to every period_end",
            "periods",
            "first_start",
            "first_end",
        ),
    )


def _expected_amount() -> pl.Expr:
    """The subscription's price scaled to the invoice's period (months, or days for day/week)."""
    price = pl.col("sub_amount_excluding_tax").cast(pl.Float64)
    months = (
        pl.when(pl.col("_whole_months"))
        .then(pl.col("_months").cast(pl.Float64))
        .otherwise(pl.col("_days") / AVERAGE_MONTH_DAYS)
    )
    by_months = months / interval_months(pl.col("sub_interval_unit"), pl.col("sub_interval_count"))
    by_days = pl.col("_days") / interval_days(
        pl.col("sub_interval_unit"), pl.col("sub_interval_count")
    )
    return price * pl.coalesce(by_months, by_days)


@rule(
    "INV-016",
    "invoices",
    "warning",
    title="Amount far from the subscription's price for that period",
    why="Line MRR comes from the invoice amount: an amount far from the contract price (missing "
    "discount, wrong quantity, misread decimals) puts a wrong MRR on the customer.",
    fix="Compare the invoice with the contract: price, discount, quantity, decimal separator.",
)
def amount_far_from_price(ctx: RuleContext) -> pl.LazyFrame:
    tolerance = ctx.options.amount_tolerance
    # gather in two steps: the currency filter drops rows before the amounts are fetched
    periods = ctx.with_invoice(ctx.billed_periods, "currency")
    priced = ctx.with_subscription(periods, "currency", "amount_excluding_tax").filter(
        (pl.col("inv_currency") == pl.col("sub_currency"))
        & (pl.col("sub_amount_excluding_tax") > 0)
    )
    priced = ctx.with_invoice(priced, "amount_excluding_tax")
    priced = ctx.with_subscription(priced, "interval_unit", "interval_count")
    rows = (
        priced.with_columns(_expected=_expected_amount())
        .with_columns(
            _deviation=(pl.col("inv_amount_excluding_tax").cast(pl.Float64) - pl.col("_expected"))
            / pl.col("_expected")
        )
        .filter(pl.col("_deviation").abs() > tolerance)
    )
    direction = pl.when(pl.col("_deviation") > 0).then(pl.lit("above")).otherwise(pl.lit("below"))
    return offending(
        ctx.with_subscription(rows, "id"),
        column="amount_excluding_tax",
        value="inv_amount_excluding_tax",
        message=fmt(
            "amount {} for {} is {}% {} the expected {} (subscription '{}': {} {} every {} {})",
            "inv_amount_excluding_tax",
            _period_text(),
            (pl.col("_deviation").abs() * 100).round(0).cast(pl.Int64),
            direction,
            pl.col("_expected").round(2),
            "sub_id",
            "sub_amount_excluding_tax",
            "sub_currency",
            "sub_interval_count",
            pl.col("sub_interval_unit").cast(pl.String),
        ),
    )


@rule(
    "INV-023",
    "invoices",
    "info",
    title="Prorated service period",
    why="A period that is not a whole number of months is prorated: its MRR is the amount over a "
    "fraction of a month, normal for a mid-cycle change, noted so it can be checked.",
    fix="Nothing if the proration is intended; otherwise correct the period's dates.",
)
def prorated_period(ctx: RuleContext) -> pl.LazyFrame:
    uneven = ctx.billed_periods.filter(~pl.col("_whole_months"))
    daily = pl.col("sub_interval_unit").is_in(["day", "week"]).fill_null(False)
    rows = ctx.with_subscription(uneven, "interval_unit").filter(~daily)
    return offending(
        rows,
        column="period_end",
        value=_period_text(),
        message=fmt(
            "period {} covers {} days, not a whole number of months",
            _period_text(),
            "_days",
        ),
    )


PERIOD_RULES: tuple[Rule, ...] = (
    period_outside_subscription,
    period_gap,
    period_overlap,
    inclusive_end_periods,
    amount_far_from_price,
    prorated_period,
)
