"""Subscription rules: references, amounts, overlaps and status (domain notes §4, subscriptions)."""

from __future__ import annotations

import polars as pl

from fincome_toolkit.rule_base import (
    FAR_FUTURE,
    Rule,
    conflicting_duplicates,
    fmt,
    offending,
    repeated_ids,
    rule,
    running_after_group_start,
    text,
    unknown_customers,
)
from fincome_toolkit.rule_context import RuleContext

LIVE_STATUSES = ("active", "trialing", "paused")

SUB_001 = Rule(
    "SUB-001",
    "subscriptions",
    "error",
    title="Required subscription field is empty",
    why="Without its customer, start date, interval, amount or currency a subscription yields no "
    "MRR, or a wrong one, and Fincome rejects it.",
    fix="Fill the missing field on the contract in the ERP.",
    unit="subscriptions",
)
SUB_002 = Rule(
    "SUB-002",
    "subscriptions",
    "error",
    title="Subscription id appears on several rows",
    why="Fincome creates or updates subscriptions by id: repeated rows overwrite each other and "
    "the last one sent wins, whatever its dates and price.",
    fix="Keep one row per subscription id (exact copies are removed by apply_fixes).",
    unit="subscriptions",
    check=lambda ctx: repeated_ids(ctx, "subscriptions"),
)
SUB_005 = Rule(
    "SUB-005",
    "subscriptions",
    "error",
    title="Subscription starts on or after its end",
    why="An empty or negative lifetime: the subscription contributes no MRR, or Fincome rejects "
    "it, and its invoices fall outside it.",
    fix="Correct start_date or end_date (end_date is exclusive: the first day without service).",
    unit="subscriptions",
)
SUB_006 = Rule(
    "SUB-006",
    "subscriptions",
    "error",
    title="Subscription currency is not an ISO 4217 code",
    why="Fincome converts every amount from its ISO currency; an unknown code cannot be converted "
    "and the subscription is rejected.",
    fix="Set the three-letter ISO currency (EUR, USD, GBP...) on the contract.",
    unit="subscriptions",
)
SUB_007 = Rule(
    "SUB-007",
    "subscriptions",
    "error",
    title="Billing interval count below 1",
    why="MRR divides the price by the months of one interval: a zero or negative interval makes "
    "it infinite or negative.",
    fix="Set interval_count to the number of interval units per billing (1 for monthly).",
    unit="subscriptions",
)
SUB_013 = Rule(
    "SUB-013",
    "subscriptions",
    "error",
    title="Negative quantity",
    why="A negative seat count is meaningless and turns per-seat revenue negative.",
    fix="Correct the quantity on the contract (0 or more).",
    unit="subscriptions",
)


@rule(
    "SUB-003",
    "subscriptions",
    "error",
    title="Same subscription id with conflicting attributes",
    why="Two versions of one contract: Fincome keeps whichever arrives last, so the MRR depends "
    "on row order.",
    fix="Keep one version of the contract per id in the ERP export.",
)
def conflicting_subscription(ctx: RuleContext) -> pl.LazyFrame:
    return conflicting_duplicates(ctx, "subscriptions", label="subscription")


@rule(
    "SUB-004",
    "subscriptions",
    "error",
    title="Subscription references an unknown customer",
    why="Fincome refuses a subscription whose customer does not exist (422), so its MRR is lost.",
    fix="Export the customer too, or correct customer_id on the subscription.",
)
def subscription_unknown_customer(ctx: RuleContext) -> pl.LazyFrame:
    return unknown_customers(ctx, "subscriptions")


@rule(
    "SUB-008",
    "subscriptions",
    "error",
    title="Negative subscription amount",
    why="A negative price makes the subscription's MRR negative, which shrinks total MRR and "
    "shows as contraction.",
    fix="Enter the price as a positive amount; model discounts and credits separately.",
)
def negative_subscription_amount(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.subscriptions.filter(pl.col("amount_excluding_tax") < 0)
    return offending(
        rows,
        column="amount_excluding_tax",
        value="amount_excluding_tax",
        message=fmt(
            "amount_excluding_tax {} {} is negative", "amount_excluding_tax", text("currency")
        ),
    )


@rule(
    "SUB-009",
    "subscriptions",
    "warning",
    title="Zero subscription amount",
    why="A free subscription counts no MRR: right for a trial or a free plan, wrong when the "
    "price was not exported.",
    fix="Check the contract: set its price, or its status to trialing when it is a trial.",
)
def zero_subscription_amount(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.subscriptions.filter(
        (pl.col("amount_excluding_tax") == 0) & (pl.col("status").cast(pl.String) != "trialing")
    )
    return offending(
        rows,
        column="amount_excluding_tax",
        value="amount_excluding_tax",
        message=fmt("amount_excluding_tax is 0 while status is {}", text("status")),
    )


@rule(
    "SUB-010",
    "subscriptions",
    "warning",
    title="Overlapping subscriptions of one customer and plan",
    why="Two live subscriptions of the same plan double the customer's MRR; typical of a plan "
    "change recorded as a new subscription without ending the old one.",
    fix="End the old subscription on the day the new one starts, or link both in the ERP.",
)
def overlapping_subscriptions(ctx: RuleContext) -> pl.LazyFrame:
    group = ["customer_id", "plan_id"]
    ordered = (
        ctx.subscriptions_by_id.filter(
            pl.col("customer_id").is_not_null()
            & pl.col("plan_id").is_not_null()
            & pl.col("start_date").is_not_null()
        )
        .with_columns(_end=pl.col("end_date").fill_null(FAR_FUTURE))
        .filter(pl.col("start_date") < pl.col("_end"))
        .sort(*group, "start_date", "id")
        .with_columns(running_after_group_start(group, "_end", "id", "_prev_end", "_prev_id"))
    )
    rows = ordered.filter(pl.col("start_date") < pl.col("_prev_end"))
    prev_end = pl.when(pl.col("_prev_end") == FAR_FUTURE).then(pl.lit("open-ended"))
    return offending(
        rows,
        column="start_date",
        value="start_date",
        message=fmt(
            "starts {} while subscription '{}' of the same customer and plan '{}' still runs ({})",
            "start_date",
            "_prev_id",
            "plan_id",
            prev_end.otherwise(fmt("until {}", "_prev_end")),
        ),
    )


@rule(
    "SUB-011",
    "subscriptions",
    "warning",
    title="Subscription without any invoice",
    why="Invoice-based MRR only sees invoiced periods: a subscription never invoiced shows no MRR "
    "there, and the two views of MRR disagree.",
    fix="Check that its invoices were exported and carry this subscription_id.",
)
def subscription_without_invoice(ctx: RuleContext) -> pl.LazyFrame:
    # the subscriptions invoices point at, as row numbers: integers are cheap to deduplicate
    invoiced_rows = ctx.invoice_sub_rows.drop_nulls().unique()
    invoiced = ctx.subscriptions["id"].gather(invoiced_rows).implode()
    rows = ctx.subscriptions.filter(
        pl.col("id").is_not_null()
        & ~pl.col("id").is_in(invoiced)
        & (pl.col("start_date") <= ctx.as_of)  # not started yet: nothing to invoice
    )
    return offending(
        rows,
        column="id",
        value="id",
        message=fmt("no invoice references this subscription (started {})", text("start_date")),
    )


def _status_contradiction(as_of_text: str) -> pl.Expr:
    status = pl.col("status").cast(pl.String)
    end = pl.col("end_date")
    return (
        pl.when(status.is_in(LIVE_STATUSES) & (end <= pl.col("_as_of")))
        .then(fmt("status '{}' but it ended on {} (as of {})", status, end, pl.lit(as_of_text)))
        .when((status == "ended") & end.is_null())
        .then(pl.lit("status 'ended' but end_date is empty (open-ended)"))
        .when((status == "ended") & (end > pl.col("_as_of")))
        .then(fmt("status 'ended' but end_date {} is after {}", end, pl.lit(as_of_text)))
        .when((status == "cancelled") & end.is_null())
        .then(
            fmt(
                "status 'cancelled' but end_date is empty: its MRR never stops (cancelled_at {})",
                text("cancelled_at"),
            )
        )
    )


@rule(
    "SUB-012",
    "subscriptions",
    "warning",
    title="Status contradicts the dates",
    why="Fincome computes MRR from the dates; a status saying otherwise means one of them is "
    "stale, and MRR is either still counted after a churn or missing for a live customer.",
    fix="Update the status, or set end_date to the first day without service.",
)
def status_contradicts_dates(ctx: RuleContext) -> pl.LazyFrame:
    rows = (
        ctx.subscriptions.lazy()
        .with_columns(_as_of=pl.lit(ctx.as_of))
        .with_columns(_message=_status_contradiction(ctx.as_of.isoformat()))
        .filter(pl.col("_message").is_not_null())
    )
    return offending(rows, column="status", value="status", message=pl.col("_message"))


SUBSCRIPTION_RULES: tuple[Rule, ...] = (
    SUB_001,
    SUB_002,
    conflicting_subscription,
    subscription_unknown_customer,
    SUB_005,
    SUB_006,
    SUB_007,
    negative_subscription_amount,
    zero_subscription_amount,
    overlapping_subscriptions,
    subscription_without_invoice,
    status_contradicts_dates,
    SUB_013,
)
