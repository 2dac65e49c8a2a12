"""Invoice rules: references, dates, types and amounts (domain notes §2 and §4, invoices).

Rules about the sequence of service periods of a subscription live in rules_periods.py.
"""

from __future__ import annotations

import polars as pl

from fincome_toolkit.rule_base import (
    Rule,
    conflicting_duplicates,
    fmt,
    is_recurring,
    offending,
    quoted,
    repeated_ids,
    rule,
    text,
    unknown_customers,
)
from fincome_toolkit.rule_context import SUB_ROW, RuleContext

UNSETTLED_STATUSES = ("open", "unpaid")

INV_001 = Rule(
    "INV-001",
    "invoices",
    "error",
    title="Required invoice field is empty",
    why="Fincome requires an id, the customer, an issue date, a payment status, a pre-tax amount "
    "and a currency on every invoice; without them the invoice is rejected.",
    fix="Fill the missing field on the invoice in the ERP.",
    unit="invoices",
)
INV_002 = Rule(
    "INV-002",
    "invoices",
    "error",
    title="Invoice id appears on several rows",
    why="Unique ids are what prevents duplicates in Fincome: a repeated id is either sent twice "
    "(double revenue) or an invoice whose lines were exported as separate rows (revenue lost).",
    fix="Export one row per invoice (sum its lines) or give each line its own id; exact copies "
    "are removed by apply_fixes.",
    unit="invoices",
    check=lambda ctx: repeated_ids(ctx, "invoices"),
)
INV_009 = Rule(
    "INV-009",
    "invoices",
    "error",
    title="Service period starts on or after its end",
    why="Line MRR divides the amount by the months of the period; an empty or reversed period "
    "cannot be spread, and Fincome's import rejects it (period_start < period_end).",
    fix="Correct period_start/period_end (period_end is exclusive: the day after the service).",
    unit="invoices",
)
INV_018 = Rule(
    "INV-018",
    "invoices",
    "warning",
    title="Negative tax amount",
    why="Tax never counts in MRR, but a negative tax on an invoice usually means the amounts "
    "were exported in the wrong columns.",
    fix="Check the invoice's pre-tax and tax amounts in the ERP.",
    unit="invoices",
)
INV_024 = Rule(
    "INV-024",
    "invoices",
    "error",
    title="Invoice currency is not an ISO 4217 code",
    why="Fincome converts each invoice at the ECB rate of its currency; an unknown code cannot be "
    "converted and the invoice is rejected.",
    fix="Set the three-letter ISO currency (EUR, USD, GBP...) on the invoice.",
    unit="invoices",
)


@rule(
    "INV-003",
    "invoices",
    "error",
    title="Same invoice id with conflicting attributes",
    why="Fincome's import requires a repeated invoice id to carry identical attributes ('invoice "
    "not consistent'); otherwise amounts or periods depend on which row wins.",
    fix="Give each invoice one consistent set of attributes, or export lines with their own ids.",
)
def conflicting_invoice(ctx: RuleContext) -> pl.LazyFrame:
    return conflicting_duplicates(ctx, "invoices", label="invoice")


@rule(
    "INV-004",
    "invoices",
    "error",
    title="Invoice references an unknown customer",
    why="Every invoice must reference a customer that exists in Fincome; otherwise it is "
    "rejected (422) and its revenue is missing.",
    fix="Export the customer too, or correct customer_id on the invoice.",
)
def invoice_unknown_customer(ctx: RuleContext) -> pl.LazyFrame:
    return unknown_customers(ctx, "invoices")


@rule(
    "INV-005",
    "invoices",
    "error",
    title="Invoice references an unknown subscription",
    why="Every invoice must reference a subscription that exists in Fincome; otherwise it is "
    "rejected (422) and its MRR is missing.",
    fix="Export the subscription too, or correct subscription_id on the invoice.",
)
def invoice_unknown_subscription(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.linked_invoices("subscription_id").filter(
        pl.col("subscription_id").is_not_null() & pl.col(SUB_ROW).is_null()
    )
    return offending(
        rows,
        column="subscription_id",
        value="subscription_id",
        message=fmt("subscription '{}' is not in the subscriptions file", "subscription_id"),
    )


@rule(
    "INV-006",
    "invoices",
    "warning",
    title="Recurring invoice not linked to a subscription",
    why="Fincome neutralises gaps and overlaps and projects future MRR only through the "
    "invoice's subscription; an unlinked recurring invoice shows as churn and reactivation.",
    fix="Fill subscription_id on the invoice (or set its type to one_off if it is not recurring).",
)
def recurring_invoice_without_subscription(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(is_recurring() & pl.col("subscription_id").is_null())
    return offending(
        rows,
        column="subscription_id",
        value="subscription_id",
        message=fmt(
            "recurring invoice of customer {} has no subscription_id", quoted("customer_id")
        ),
    )


@rule(
    "INV-007",
    "invoices",
    "error",
    title="Invoice customer differs from its subscription's customer",
    why="The invoice's revenue lands on one customer and the subscription's MRR on another: both "
    "customers' MRR, movements and cohorts come out wrong.",
    fix="Correct customer_id or subscription_id on the invoice so both point at the same customer.",
)
def invoice_customer_mismatch(ctx: RuleContext) -> pl.LazyFrame:
    linked = ctx.linked_invoices("customer_id", "subscription_id").filter(
        pl.col(SUB_ROW).is_not_null() & pl.col("customer_id").is_not_null()
    )
    rows = ctx.with_subscription(linked, "customer_id").filter(
        pl.col("customer_id") != pl.col("sub_customer_id")
    )
    return offending(
        rows,
        column="customer_id",
        value="customer_id",
        message=fmt(
            "invoice customer '{}' differs from customer '{}' of subscription '{}'",
            "customer_id",
            "sub_customer_id",
            "subscription_id",
        ),
    )


@rule(
    "INV-008",
    "invoices",
    "warning",
    title="Issue date in the future",
    why="An invoice dated after the export puts revenue in a month that has not happened; it is "
    "usually a draft or a mistyped year.",
    fix="Check the issue date; leave drafts out of the export until they are issued.",
)
def future_issue_date(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(pl.col("issue_date") > ctx.as_of)
    return offending(
        rows,
        column="issue_date",
        value="issue_date",
        message=fmt(
            "issued {}, after {} (the audit date)", "issue_date", pl.lit(ctx.as_of.isoformat())
        ),
    )


@rule(
    "INV-015",
    "invoices",
    "warning",
    title="Invoice currency differs from its subscription's",
    why="MRR is compared across invoices and subscriptions in one currency; a mismatch makes the "
    "amount check meaningless and moves MRR with the exchange rate.",
    fix="Invoice in the subscription's currency, or correct the currency of one of them.",
)
def invoice_currency_mismatch(ctx: RuleContext) -> pl.LazyFrame:
    linked = ctx.linked_invoices("currency", "subscription_id").filter(
        pl.col(SUB_ROW).is_not_null() & pl.col("currency").is_not_null()
    )
    rows = ctx.with_subscription(linked, "currency").filter(
        pl.col("currency") != pl.col("sub_currency")
    )
    return offending(
        rows,
        column="currency",
        value="currency",
        message=fmt(
            "invoice in {} but subscription '{}' is priced in {}",
            "currency",
            "subscription_id",
            "sub_currency",
        ),
    )


@rule(
    "INV-017",
    "invoices",
    "warning",
    title="Tax larger than the pre-tax amount",
    why="No VAT rate exceeds 100%: the amounts were probably swapped, so the pre-tax amount (the "
    "one MRR uses) is wrong.",
    fix="Check which column holds the pre-tax amount in the ERP export.",
)
def tax_exceeds_amount(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(pl.col("tax_amount").abs() > pl.col("amount_excluding_tax").abs())
    return offending(
        rows,
        column="tax_amount",
        value="tax_amount",
        message=fmt(
            "tax_amount {} exceeds amount_excluding_tax {}", "tax_amount", "amount_excluding_tax"
        ),
    )


@rule(
    "INV-019",
    "invoices",
    "warning",
    title="Open or unpaid invoice on a cancelled subscription",
    why="Unsettled invoices on a cancelled subscription keep MRR alive after the churn (Fincome "
    "counts invoiced revenue); they are often never paid.",
    fix="Void or credit the invoice in the ERP, or record its payment.",
)
def open_invoice_on_cancelled_subscription(ctx: RuleContext) -> pl.LazyFrame:
    unsettled = ctx.linked_invoices("status", "subscription_id").filter(
        pl.col("status").is_in(UNSETTLED_STATUSES) & pl.col(SUB_ROW).is_not_null()
    )
    rows = ctx.with_subscription(unsettled, "status", "end_date").filter(
        pl.col("sub_status") == "cancelled"
    )
    return offending(
        rows,
        column="status",
        value="status",
        message=fmt(
            "invoice is {} but subscription '{}' is cancelled (end_date {})",
            pl.col("status").cast(pl.String),
            "subscription_id",
            text("sub_end_date"),
        ),
    )


@rule(
    "INV-020",
    "invoices",
    "warning",
    title="Issue date far from the service period",
    why="An invoice issued months away from the service it bills usually carries the wrong "
    "period, which moves its MRR to the wrong months.",
    fix="Check the invoice's service period against its issue date in the ERP.",
)
def issue_date_far_from_period(ctx: RuleContext) -> pl.LazyFrame:
    window = ctx.options.issue_date_window_days
    before = (pl.col("period_start") - pl.col("issue_date")).dt.total_days()
    after = (pl.col("issue_date") - pl.col("period_end")).dt.total_days()
    rows = ctx.invoices.filter(
        pl.col("period_start") < pl.col("period_end"),
        (before > window) | (after > window),
    )
    return offending(
        rows,
        column="issue_date",
        value="issue_date",
        message=pl.when(before > window)
        .then(fmt("issued {} days before its period {} → {}", before, "period_start", "period_end"))
        .otherwise(
            fmt(
                "issued {} days after its period {} → {} ended", after, "period_start", "period_end"
            )
        ),
    )


@rule(
    "INV-021",
    "invoices",
    "warning",
    title="One-off invoice carrying a service period",
    why="One-off lines never count in MRR; a one-off invoice with a service period is often a "
    "recurring invoice with the wrong type, and its MRR is missing.",
    fix="Set the type to subscription if the invoice is recurring, otherwise clear its period.",
)
def one_off_with_period(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(
        (pl.col("type").cast(pl.String) == "one_off")
        & (pl.col("period_start").is_not_null() | pl.col("period_end").is_not_null())
    )
    return offending(
        rows,
        column="type",
        value="type",
        message=fmt(
            "one-off invoice with service period {} → {}", text("period_start"), text("period_end")
        ),
    )


@rule(
    "INV-022",
    "invoices",
    "error",
    title="Recurring invoice without a complete service period",
    why="Line MRR is the amount divided by the months of its service period: without a period "
    "the invoice contributes no MRR and the customer may show none at all.",
    fix="Export period_start and period_end (exclusive) for every recurring invoice.",
)
def recurring_invoice_without_period(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(
        is_recurring() & (pl.col("period_start").is_null() | pl.col("period_end").is_null())
    )
    return offending(
        rows,
        column=pl.when(pl.col("period_start").is_null())
        .then(pl.lit("period_start"))
        .otherwise(pl.lit("period_end")),
        value=fmt("{} → {}", text("period_start"), text("period_end")),
        message=fmt(
            "recurring invoice with period {} → {}", text("period_start"), text("period_end")
        ),
    )


@rule(
    "INV-025",
    "invoices",
    "warning",
    title="Negative invoice amount",
    why="A negative invoice is a credit note in disguise: it lowers MRR for its period, which "
    "Fincome models with credit notes referencing the invoice they cancel.",
    fix="Export credit notes separately, referencing the invoice they cancel.",
)
def negative_invoice_amount(ctx: RuleContext) -> pl.LazyFrame:
    rows = ctx.invoices.filter(pl.col("amount_excluding_tax") < 0)
    return offending(
        rows,
        column="amount_excluding_tax",
        value="amount_excluding_tax",
        message=fmt(
            "amount_excluding_tax {} {} is negative", "amount_excluding_tax", text("currency")
        ),
    )


INVOICE_RULES: tuple[Rule, ...] = (
    INV_001,
    INV_002,
    conflicting_invoice,
    invoice_unknown_customer,
    invoice_unknown_subscription,
    recurring_invoice_without_subscription,
    invoice_customer_mismatch,
    future_issue_date,
    INV_009,
    invoice_currency_mismatch,
    tax_exceeds_amount,
    INV_018,
    open_invoice_on_cancelled_subscription,
    issue_date_far_from_period,
    one_off_with_period,
    recurring_invoice_without_period,
    INV_024,
    negative_invoice_amount,
)
