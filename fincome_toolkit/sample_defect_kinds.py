"""The defect kinds of the sample generator: one small function per kind, in planting order.

Each function takes free records from the `Planter`, changes them and writes one manifest row per
planted defect, naming the record an audit rule reports (e.g. the *later* of two overlapping
subscriptions, the invoice *after* a gap, the subscription whose periods use inclusive ends).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import numpy as np
import polars as pl

from fincome_toolkit.frames import Dataset
from fincome_toolkit.sample_defects import (
    PARSE_LEVEL,
    RECURRING,
    ROW,
    Planter,
    add_months,
    tax_on,
)
from fincome_toolkit.sample_history import AS_OF, LEGAL_FORMS, History

PlantFunction = Callable[[Planter], None]
PLANTERS: dict[str, PlantFunction] = {}
CLOSED = pl.col("end_date").is_not_null()
CANCELLED = pl.col("status") == "cancelled"
LAST_RECURRING = RECURRING & (pl.col("k") == pl.col("n") - 1)


def kind(name: str) -> Callable[[PlantFunction], PlantFunction]:
    """Register a planting function under its defect kind."""

    def register(function: PlantFunction) -> PlantFunction:
        PLANTERS[name] = function
        return function

    return register


def _parse_level(name: str) -> PlantFunction:
    """A value the loader cannot read: null in the truth, raw text in the export."""
    frame, _, raw_values, _ = PARSE_LEVEL[name]

    def plant(p: Planter) -> None:
        rows = p.customers(name) if frame == "customers" else p.invoices(name)
        for i, row in enumerate(rows.iter_rows(named=True)):
            p.unreadable(name, row, raw_values[i % len(raw_values)])

    return plant


for _name in PARSE_LEVEL:
    PLANTERS[_name] = _parse_level(_name)


# -- customers --------------------------------------------------------------------------------


@kind("duplicate_customer_id")
def _duplicate_customer(p: Planter) -> None:
    for row in p.customers("duplicate_customer_id").iter_rows(named=True):
        p.append("customers", row)
        p.note("duplicate_customer_id", "customers", row["id"], None, "the row appears twice")


@kind("conflicting_customer")
def _conflicting_customer(p: Planter) -> None:
    for row in p.customers("conflicting_customer").iter_rows(named=True):
        other = row["email"].replace("billing@", "accounts@")
        p.append("customers", row, email=other)
        detail = f"a second row with this id has email {other} (first row: {row['email']})"
        p.note("conflicting_customer", "customers", row["id"], "email", detail)


INVALID_EMAILS = (
    lambda e: e.replace("@", " at "),
    lambda e: e.replace("@", "@@"),
    lambda e: e.replace("@", ""),
    lambda e: e.replace(".example", ""),
)


@kind("invalid_email")
def _invalid_email(p: Planter) -> None:
    for i, row in enumerate(p.customers("invalid_email").iter_rows(named=True)):
        email = INVALID_EMAILS[i % len(INVALID_EMAILS)](row["email"])
        p.set("customers", row[ROW], "email", email)
        p.note("invalid_email", "customers", row["id"], "email", email)


@kind("unknown_parent")
def _unknown_parent(p: Planter) -> None:
    loose = ~pl.col("is_parent") & ~pl.col("is_child")
    for row in p.customers("unknown_parent", loose).iter_rows(named=True):
        parent = p.unknown_id("customers")
        p.set("customers", row[ROW], "root_parent_id", parent)
        p.note("unknown_parent", "customers", row["id"], "root_parent_id", f"parent {parent}")


@kind("parent_cycle")
def _parent_cycle(p: Planter) -> None:
    loose = ~pl.col("is_parent") & ~pl.col("is_child")
    rows = p.customers("parent_cycle", loose, count=2 * p.per_kind).rows(named=True)
    for first, second in zip(rows[::2], rows[1::2], strict=True):
        p.set("customers", first[ROW], "root_parent_id", second["id"])
        p.set("customers", second[ROW], "root_parent_id", first["id"])
        cycle = f"{first['id']} → {second['id']} → {first['id']}"
        p.note("parent_cycle", "customers", first["id"], "root_parent_id", cycle)


@kind("probable_duplicate_customer")
def _probable_duplicate(p: Planter) -> None:
    """A second account for the same company: same email, name in capitals without its legal
    form; the customer's latest subscription (and its invoices) moved to it."""
    chosen = p.customers("probable_duplicate_customer", pl.col("n_subs") >= 2, lock=True)
    for row in chosen.iter_rows(named=True):
        duplicate = p.new_customer_id()
        name = row["name"].removesuffix(" " + LEGAL_FORMS[row["country"]]).upper()
        p.append("customers", row, id=duplicate, name=name, root_parent_id=None)
        moved = p.subs.filter(pl.col("customer_id") == row["id"]).sort("start_date", "id")[-1]
        p.set("subscriptions", moved[ROW].item(), "customer_id", duplicate)
        for invoice_row in p.invoices_of(moved["id"])[ROW]:
            p.set("invoices", invoice_row, "customer_id", duplicate)
        detail = f"same company as {row['id']} (same email; holds {moved['id'].item()})"
        p.note("probable_duplicate_customer", "customers", duplicate, "name", detail)


@kind("customer_without_subscription")
def _customer_without_subscription(p: Planter) -> None:
    templates = p.frames["customers"][: p.per_kind]
    for row in templates.iter_rows(named=True):
        new_id = p.new_customer_id()
        old_number, new_number = str(int(row["id"][4:])), str(int(new_id[4:]))
        p.append(
            "customers",
            row,
            id=new_id,
            name=row["name"].replace(f" {old_number} ", f" {new_number} "),
            email=row["email"].replace(f"-{old_number}.", f"-{new_number}."),
            root_parent_id=None,
        )
        detail = "no subscription and no invoice"
        p.note("customer_without_subscription", "customers", new_id, None, detail)


@kind("missing_name")
def _missing_name(p: Planter) -> None:
    for row in p.customers("missing_name").iter_rows(named=True):
        p.set("customers", row[ROW], "name", None)
        p.note("missing_name", "customers", row["id"], "name", "name left empty")


# -- subscriptions ----------------------------------------------------------------------------


@kind("duplicate_subscription_id")
def _duplicate_subscription(p: Planter) -> None:
    for row in p.subscriptions("duplicate_subscription_id").iter_rows(named=True):
        p.append("subscriptions", row)
        detail = "the row appears twice"
        p.note("duplicate_subscription_id", "subscriptions", row["id"], None, detail)


@kind("subscription_unknown_customer")
def _subscription_unknown_customer(p: Planter) -> None:
    """The customer's row is missing from the export (its invoices reference it too)."""
    single = (pl.col("n_subs") == 1) & ~pl.col("is_parent")
    chosen = p.customers("subscription_unknown_customer", single, lock=True)
    p.delete("customers", chosen[ROW].to_list())
    for customer_id in chosen["id"]:
        sub = p.subs.filter(pl.col("customer_id") == customer_id).row(0, named=True)
        detail = f"customer {customer_id} is not in the customers file (nor are its invoices')"
        p.note("subscription_unknown_customer", "subscriptions", sub["id"], "customer_id", detail)


@kind("subscription_start_not_before_end")
def _start_not_before_end(p: Planter) -> None:
    for row in p.subscriptions("subscription_start_not_before_end", CLOSED).iter_rows(named=True):
        p.set("subscriptions", row[ROW], "start_date", row["end_date"])
        p.set("subscriptions", row[ROW], "end_date", row["start_date"])
        detail = f"start_date {row['end_date']} and end_date {row['start_date']} swapped"
        p.note(
            "subscription_start_not_before_end", "subscriptions", row["id"], "start_date", detail
        )


@kind("nonpositive_subscription_amount")
def _nonpositive_amount(p: Planter) -> None:
    chosen = p.subscriptions("nonpositive_subscription_amount")
    for i, row in enumerate(chosen.iter_rows(named=True)):
        amount = Decimal("0.00") if i % 2 == 0 else -row["amount_excluding_tax"]
        p.set("subscriptions", row[ROW], "amount_excluding_tax", amount)
        detail = f"amount {amount} (its invoices bill {row['amount_excluding_tax']})"
        kind_name = "nonpositive_subscription_amount"
        p.note(kind_name, "subscriptions", row["id"], "amount_excluding_tax", detail)


@kind("overlapping_subscriptions")
def _overlapping(p: Planter) -> None:
    """A plan change recorded without ending the old subscription on time: the old one (A) runs
    one more interval, billed, and the new one (B) gets A's plan. Reported on B, which starts
    while A runs."""
    for _ in range(p.per_kind):  # one at a time: a successor may itself be an ended subscription
        pairs = _switch_pairs(p).filter(pl.col("new_end") <= AS_OF)
        old = p.subscriptions(
            "overlapping_subscriptions", pl.col("id").is_in(pairs["id"].implode()), count=1
        ).row(0, named=True)
        pair = pairs.filter(pl.col("id") == old["id"]).row(0, named=True)
        p.used_subscriptions.add(pair["next_id"])
        p.set("subscriptions", old[ROW], "end_date", pair["new_end"])
        p.set("subscriptions", pair["next_row"], "plan_id", old["plan_id"])
        last = p.invoices_of(pl.Series([old["id"]])).filter(LAST_RECURRING).row(0, named=True)
        _bill_next_period(p, last, old, status="paid")
        detail = (
            f"starts {pair['next_start']} while {old['id']} ({old['plan_id']}) runs until "
            f"{pair['new_end']}"
        )
        p.note("overlapping_subscriptions", "subscriptions", pair["next_id"], "start_date", detail)


def _switch_pairs(p: Planter) -> pl.DataFrame:
    """Ended subscriptions whose successor started the day they ended, with the date one more
    interval would end them."""
    subs = p.subs.filter(pl.col("status") == "ended")
    following = p.subs.select(
        "customer_id",
        next_start=pl.col("start_date"),
        next_id=pl.col("id"),
        next_row=pl.col(ROW),
    )
    pairs = subs.join(
        following, left_on=["customer_id", "end_date"], right_on=["customer_id", "next_start"]
    ).filter(~pl.col("next_id").is_in(list(p.used_subscriptions)))
    periods = (pl.col("n_rec") + 1) * pl.col("months")
    return pairs.with_columns(
        next_start=pl.col("end_date"),
        new_end=pl.col("start_date").dt.offset_by(pl.format("{}mo", periods)),
    ).unique("id", keep="first", maintain_order=True)


@kind("subscription_without_invoice")
def _without_invoice(p: Planter) -> None:
    chosen = p.subscriptions("subscription_without_invoice", pl.col("n_one_off") == 0)
    for row in chosen.iter_rows(named=True):
        p.delete("invoices", p.invoices_of(pl.Series([row["id"]]))[ROW].to_list())
        detail = f"its {row['n_rec']} invoice(s) were left out of the export"
        p.note("subscription_without_invoice", "subscriptions", row["id"], None, detail)


@kind("status_contradicts_dates")
def _status_contradicts(p: Planter) -> None:
    for row in p.subscriptions("status_contradicts_dates", CANCELLED).iter_rows(named=True):
        p.set("subscriptions", row[ROW], "status", "active")
        p.set("subscriptions", row[ROW], "cancelled_at", None)
        detail = f"status active but it ended on {row['end_date']}"
        p.note("status_contradicts_dates", "subscriptions", row["id"], "status", detail)


def _bill_next_period(p: Planter, last: dict, sub: dict, *, status: str) -> str:
    """Append the invoice of the period after `last` (a recurring invoice of `sub`)."""
    new_id = p.new_invoice_id()
    start = last["period_end"]
    end = add_months(sub["start_date"], (last["k"] + 2) * sub["months"])
    p.append(
        "invoices",
        last,
        id=new_id,
        issue_date=start,
        due_date=start + timedelta(days=30),
        period_start=start,
        period_end=end,
        status=status,
    )
    return new_id


# -- invoices ---------------------------------------------------------------------------------


@kind("duplicate_invoice_id")
def _duplicate_invoice(p: Planter) -> None:
    for row in p.invoices("duplicate_invoice_id").iter_rows(named=True):
        p.append("invoices", row)
        p.note("duplicate_invoice_id", "invoices", row["id"], None, "the row appears twice")


@kind("invoice_unknown_customer")
def _invoice_unknown_customer(p: Planter) -> None:
    for row in p.invoices("invoice_unknown_customer").iter_rows(named=True):
        customer = p.unknown_id("customers")
        p.set("invoices", row[ROW], "customer_id", customer)
        detail = f"customer {customer} does not exist"
        p.note("invoice_unknown_customer", "invoices", row["id"], "customer_id", detail)


@kind("invoice_unknown_subscription")
def _invoice_unknown_subscription(p: Planter) -> None:
    """The last invoice of an ended subscription points at a subscription id that does not
    exist (the last one, so the subscription's other periods stay contiguous)."""
    rows = p.invoices(
        "invoice_unknown_subscription",
        sub_where=CLOSED & (pl.col("n_rec") >= 2),
        where=LAST_RECURRING,
    )
    for row in rows.iter_rows(named=True):
        subscription = p.unknown_id("subscriptions")
        p.set("invoices", row[ROW], "subscription_id", subscription)
        detail = f"subscription {subscription} does not exist (was {row['subscription_id']})"
        p.note("invoice_unknown_subscription", "invoices", row["id"], "subscription_id", detail)


@kind("invoice_customer_mismatch")
def _invoice_customer_mismatch(p: Planter) -> None:
    rows = p.invoices("invoice_customer_mismatch")
    others = p.customers(
        "invoice_customer_mismatch", ~pl.col("id").is_in(rows["customer_id"].implode())
    )
    for row, other in zip(rows.iter_rows(named=True), others["id"], strict=True):
        p.set("invoices", row[ROW], "customer_id", other)
        detail = (
            f"billed to {other}; subscription {row['subscription_id']} is {row['customer_id']}'s"
        )
        p.note("invoice_customer_mismatch", "invoices", row["id"], "customer_id", detail)


@kind("future_issue_date")
def _future_issue_date(p: Planter) -> None:
    """The next period's invoice of a running subscription, issued after as_of (a draft)."""
    running = pl.col("end_date").is_null() & (pl.col("last_end") > AS_OF)
    for sub in p.subscriptions("future_issue_date", running).iter_rows(named=True):
        last = p.invoices_of(pl.Series([sub["id"]])).filter(LAST_RECURRING).row(0, named=True)
        new_id = _bill_next_period(p, last, sub, status="open")
        detail = f"issued {last['period_end']}, after {AS_OF}"
        p.note("future_issue_date", "invoices", new_id, "issue_date", detail)


@kind("invoice_period_not_increasing")
def _period_not_increasing(p: Planter) -> None:
    rows = p.invoices(
        "invoice_period_not_increasing",
        sub_where=CLOSED & (pl.col("n_rec") >= 2),
        where=LAST_RECURRING,
    )
    for row in rows.iter_rows(named=True):
        p.set("invoices", row[ROW], "period_end", row["period_start"])
        detail = f"period_end {row['period_start']} equals period_start"
        p.note("invoice_period_not_increasing", "invoices", row["id"], "period_end", detail)


@kind("period_outside_subscription")
def _period_outside(p: Planter) -> None:
    """One more period billed after a cancelled subscription ended."""
    chosen = p.subscriptions("period_outside_subscription", CANCELLED & (pl.col("n_rec") > 0))
    for sub in chosen.iter_rows(named=True):
        last = p.invoices_of(pl.Series([sub["id"]])).filter(LAST_RECURRING).row(0, named=True)
        new_id = _bill_next_period(p, last, sub, status="paid")
        detail = f"bills the period from {sub['end_date']}, after {sub['id']} ended"
        p.note("period_outside_subscription", "invoices", new_id, "period_end", detail)


@kind("period_gap")
def _period_gap(p: Planter) -> None:
    """A missing invoice in the middle of a subscription; reported on the invoice after it."""
    middle = RECURRING & pl.col("k").is_between(1, pl.col("n") - 2)
    rows = p.invoices("period_gap", sub_where=pl.col("n_rec") >= 3, where=middle)
    for row in rows.iter_rows(named=True):
        p.delete("invoices", [row[ROW]])
        after = p.invoices_of(pl.Series([row["subscription_id"]])).filter(
            RECURRING & (pl.col("k") == row["k"] + 1)
        )
        detail = f"period {row['period_start']} → {row['period_end']} ({row['id']}) is missing"
        p.note("period_gap", "invoices", after["id"].item(), "period_start", detail)


@kind("period_overlap")
def _period_overlap(p: Planter) -> None:
    """The same period invoiced twice under two invoice numbers; reported on the second."""
    rows = p.invoices(
        "period_overlap", sub_where=pl.col("n_rec") >= 2, where=RECURRING & (pl.col("k") >= 1)
    )
    for row in rows.iter_rows(named=True):
        new_id = p.new_invoice_id()
        p.append("invoices", row, id=new_id)
        detail = f"bills {row['period_start']} → {row['period_end']} again (already {row['id']})"
        p.note("period_overlap", "invoices", new_id, "period_start", detail)


@kind("inclusive_end_periods")
def _inclusive_ends(p: Planter) -> None:
    """Every period of a subscription ends the day before the next starts (reported per
    subscription by the audit)."""
    chosen = p.subscriptions("inclusive_end_periods", pl.col("n_rec").is_between(2, 12))
    for sub in chosen.iter_rows(named=True):
        periods = p.invoices_of(pl.Series([sub["id"]])).filter(RECURRING)
        for row in periods.iter_rows(named=True):
            p.set("invoices", row[ROW], "period_end", row["period_end"] - timedelta(days=1))
        detail = f"its {periods.height} invoice periods end the day before the next starts"
        p.note("inclusive_end_periods", "subscriptions", sub["id"], "period_end", detail)


@kind("invoice_currency_mismatch")
def _currency_mismatch(p: Planter) -> None:
    for row in p.invoices("invoice_currency_mismatch").iter_rows(named=True):
        other = "USD" if row["currency"] != "USD" else "EUR"
        p.set("invoices", row[ROW], "currency", other)
        detail = f"{other} while subscription {row['subscription_id']} is in {row['currency']}"
        p.note("invoice_currency_mismatch", "invoices", row["id"], "currency", detail)


@kind("amount_far_from_price")
def _amount_far_from_price(p: Planter) -> None:
    for row in p.invoices("amount_far_from_price").iter_rows(named=True):
        amount = row["amount_excluding_tax"] * 10
        p.set("invoices", row[ROW], "amount_excluding_tax", amount)
        p.set("invoices", row[ROW], "tax_amount", tax_on(amount))
        detail = f"{amount} for a price of {row['amount_excluding_tax']} (a misplaced decimal)"
        p.note("amount_far_from_price", "invoices", row["id"], "amount_excluding_tax", detail)


@kind("tax_exceeds_amount")
def _tax_exceeds_amount(p: Planter) -> None:
    for row in p.invoices("tax_exceeds_amount").iter_rows(named=True):
        tax = row["amount_excluding_tax"] + row["tax_amount"]
        p.set("invoices", row[ROW], "tax_amount", tax)
        detail = f"tax {tax} is the amount including tax"
        p.note("tax_exceeds_amount", "invoices", row["id"], "tax_amount", detail)


@kind("open_invoice_on_cancelled_subscription")
def _open_on_cancelled(p: Planter) -> None:
    name = "open_invoice_on_cancelled_subscription"
    rows = p.invoices(name, sub_where=CANCELLED, where=LAST_RECURRING)
    for i, row in enumerate(rows.iter_rows(named=True)):
        status = ("unpaid", "open")[i % 2]
        p.set("invoices", row[ROW], "status", status)
        detail = f"{status} while {row['subscription_id']} is cancelled"
        p.note(name, "invoices", row["id"], "status", detail)


@kind("issue_date_far_from_period")
def _issue_date_far(p: Planter) -> None:
    since = AS_OF - timedelta(days=2 * 365)
    rows = p.invoices(
        "issue_date_far_from_period",
        sub_where=pl.col("last_start") >= since,
        where=RECURRING & (pl.col("period_start") >= since),
    )
    for row in rows.iter_rows(named=True):
        issue = row["period_start"] - timedelta(days=150)
        p.set("invoices", row[ROW], "issue_date", issue)
        p.set("invoices", row[ROW], "due_date", issue + timedelta(days=30))
        detail = f"issued {issue}, 150 days before its period starts"
        p.note("issue_date_far_from_period", "invoices", row["id"], "issue_date", detail)


@kind("one_off_with_period")
def _one_off_with_period(p: Planter) -> None:
    running = (pl.col("n_one_off") > 0) & pl.col("end_date").is_null()
    for row in p.invoices("one_off_with_period", sub_where=running, where=~RECURRING).iter_rows(
        named=True
    ):
        end = add_months(row["issue_date"], 1)
        p.set("invoices", row[ROW], "period_start", row["issue_date"])
        p.set("invoices", row[ROW], "period_end", end)
        detail = f"one-off invoice with period {row['issue_date']} → {end}"
        p.note("one_off_with_period", "invoices", row["id"], "type", detail)


@kind("negative_tax")
def _negative_tax(p: Planter) -> None:
    for row in p.invoices("negative_tax").iter_rows(named=True):
        p.set("invoices", row[ROW], "tax_amount", -row["tax_amount"])
        p.note("negative_tax", "invoices", row["id"], "tax_amount", f"tax {-row['tax_amount']}")


DEFECT_KINDS: tuple[str, ...] = tuple(PLANTERS)


def plant_defects(
    history: History, rng: np.random.Generator, *, per_kind: int = 3
) -> tuple[Dataset, pl.DataFrame]:
    """Plant `per_kind` defects of every kind; return the dirty truth and the manifest."""
    planter = Planter(history, rng, per_kind)
    for plant in PLANTERS.values():
        plant(planter)
    return planter.result()
