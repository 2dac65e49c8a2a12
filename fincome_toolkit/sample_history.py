"""Clean canonical frames from a sample layout: customers, subscriptions and their invoices.

"Clean" means consistent by construction: every subscription bills one invoice per interval from
its anchor date, with contiguous half-open periods, up to `AS_OF`; a subscription ends on an
interval boundary; subscription-based and invoice-based MRR agree for every customer-month ending
before `AS_OF`. Money is computed in integer cents and converted to `Decimal(18, 2)` once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.sample_layout import (
    Draws,
    Layout,
    anchor_days,
    cumsum_within,
    month_day,
)

AS_OF = date(2026, 11, 1)
HISTORY_START = date(2023, 11, 1)
_AS_OF_DAY = np.datetime64(AS_OF.isoformat(), "D")

CURRENCIES = np.array(["EUR", "USD", "GBP"])
CURRENCY_SHARES = [0.6, 0.25, 0.15]
COUNTRIES = {  # by currency index: (countries, shares)
    0: (["FR", "DE", "ES", "IT", "NL", "BE", "IE"], [0.45, 0.2, 0.1, 0.08, 0.07, 0.06, 0.04]),
    1: (["US", "CA"], [0.85, 0.15]),
    2: (["GB"], [1.0]),
}
LEGAL_FORMS = {"FR": "SAS", "DE": "GmbH", "ES": "S.L.", "IT": "S.r.l.", "NL": "B.V."}
LEGAL_FORMS |= {"BE": "SRL", "IE": "Ltd", "US": "Inc.", "CA": "Inc.", "GB": "Ltd"}
ZIP_PATTERNS = {"NL": "9999 AA", "BE": "9999", "IE": "A99 A9A9", "GB": "AA9 9AA", "CA": "A9A 9A9"}
ADJECTIVES = [
    "Blue",
    "Bright",
    "Swift",
    "Nordic",
    "Alpine",
    "Silver",
    "Golden",
    "Urban",
    "Clear",
    "Solid",
    "Brave",
    "Quiet",
    "Rapid",
    "Open",
    "True",
    "Noble",
    "Green",
    "Polar",
    "Lunar",
    "Solar",
    "Prime",
    "Smart",
    "Agile",
    "Bold",
    "Crisp",
    "Deep",
    "Early",
    "Fair",
    "Grand",
    "Keen",
]
NOUNS = [
    "Harbor",
    "Analytics",
    "Cloud",
    "Logic",
    "Metrics",
    "Bridge",
    "Forge",
    "Pixel",
    "Labs",
    "Systems",
    "Works",
    "Data",
    "Ledger",
    "Orbit",
    "Signal",
    "Vector",
    "Beacon",
    "Canopy",
    "Summit",
    "Delta",
    "Falcon",
    "Matrix",
    "Harvest",
    "Atlas",
    "Quarry",
    "Lantern",
    "Stack",
    "Meadow",
    "Ember",
    "Circuit",
]
SEGMENTS = np.array(["SMB", "Mid-market", "Enterprise"])
SALES_REPS = np.array(
    ["Camille Martin", "Lucas Bernard", "Léa Petit", "Noah Smith", "Olivia Brown"]
)
CHANNELS = np.array(["web", "sales", "partner"])
PARENT_SHARE = 0.04

TIERS = np.array(["starter", "growth", "scale", "enterprise"])
TIER_SHARES = [0.4, 0.35, 0.18, 0.07]
UPGRADE_SHARE = 0.65  # of switches; the others are downgrades
MONTHLY_PRICE_CENTS = np.array(  # per tier (columns) and currency (rows)
    [[2900, 9900, 29900, 99000], [3500, 11900, 34900, 119000], [2500, 8500, 25900, 85000]]
)
# Indexed by months per interval (1, 3 or 12): longer commitments get a discount.
INTERVAL_DISCOUNT_PERCENT = np.zeros(13, dtype=np.int64)
INTERVAL_DISCOUNT_PERCENT[[1, 3, 12]] = [100, 95, 85]
INTERVAL_NAMES = np.full(13, "", dtype="U9")
INTERVAL_NAMES[[1, 3, 12]] = ["monthly", "quarterly", "yearly"]
ONE_OFF_CENTS = np.array([15000, 49000, 120000, 250000])  # setup, training, consulting...
TAX_PERCENT = 20
DUE_DAYS = 30


@dataclass(frozen=True)
class History:
    """The clean frames plus the per-subscription facts the defect planter needs."""

    customers: pl.DataFrame
    subscriptions: pl.DataFrame
    invoices: pl.DataFrame


def format_ids(prefix: str, numbers: np.ndarray | pl.Series, width: int) -> pl.Series:
    """Ids like `INV-00000042` from 1-based numbers (vectorised)."""
    text = pl.Series(numbers).cast(pl.String).str.zfill(width)
    return pl.select(pl.lit(prefix) + text).to_series()


CUSTOMER_PREFIX, CUSTOMER_WIDTH = "CUS-", 6
SUBSCRIPTION_PREFIX, SUBSCRIPTION_WIDTH = "SUB-", 7
INVOICE_PREFIX, INVOICE_WIDTH = "INV-", 8


def numbers_in_order(*keys: np.ndarray) -> np.ndarray:
    """1-based numbers following the order of `keys` (last key sorts first, like np.lexsort)."""
    order = np.lexsort(keys)
    numbers = np.empty(order.size, dtype=np.int64)
    numbers[order] = np.arange(1, order.size + 1)
    return numbers


def to_money(cents: np.ndarray) -> pl.Series:
    """Exact `Decimal(18, 2)` from integer cents."""
    return (pl.Series(cents).cast(frames.MONEY) / 100).cast(frames.MONEY)


def enum_series(values: tuple[str, ...], codes: np.ndarray) -> pl.Series:
    """A `pl.Enum` series from integer codes into `values`."""
    return pl.Series(values, dtype=pl.Enum(values)).gather(codes)


def build_history(rng: np.random.Generator, draws: Draws, layout: Layout) -> History:
    """The three clean canonical frames for a calibrated layout."""
    kept = np.flatnonzero(layout.keep)
    anchor = anchor_days(draws, layout)[kept]
    start_month = layout.start_month[kept]
    start = month_day(start_month, anchor)
    customers, currency = _customers(rng, draws, start, draws.customer[kept])
    subscriptions, sub_facts = _subscriptions(rng, draws, layout, kept, anchor, currency)
    subscriptions = subscriptions.with_columns(
        customer_id=customers["id"].gather(draws.customer[kept])
    )
    invoices = _invoices(rng, subscriptions, sub_facts)
    return History(
        customers=customers.sort("id"),
        subscriptions=subscriptions.sort("id"),
        invoices=invoices,
    )


def _customers(
    rng: np.random.Generator, draws: Draws, sub_start: np.ndarray, sub_customer: np.ndarray
) -> tuple[pl.DataFrame, np.ndarray]:
    """Customers numbered by their first subscription's start; returns them and their currency."""
    count = draws.start_draw.size
    first_start = np.full(count, np.datetime64("2100-01-01"), dtype="datetime64[D]")
    np.minimum.at(first_start, sub_customer, sub_start)
    number = numbers_in_order(np.arange(count), first_start)
    currency = rng.choice(len(CURRENCIES), size=count, p=CURRENCY_SHARES)
    country = np.empty(count, dtype="U2")
    for code, (names, shares) in COUNTRIES.items():
        chosen = currency == code
        country[chosen] = rng.choice(names, size=int(chosen.sum()), p=shares)
    adjective = np.array(ADJECTIVES)[rng.integers(0, len(ADJECTIVES), count)]
    noun = np.array(NOUNS)[rng.integers(0, len(NOUNS), count)]
    is_child = rng.random(count) < PARENT_SHARE
    parent = rng.choice(np.flatnonzero(~is_child), size=int(is_child.sum()))
    ids = format_ids(CUSTOMER_PREFIX, number, CUSTOMER_WIDTH)
    root_parent = pl.repeat(None, count, dtype=pl.String, eager=True).scatter(
        np.flatnonzero(is_child), ids.gather(parent)
    )
    frame = pl.DataFrame(
        {
            "id": ids,
            "adjective": adjective,
            "noun": noun,
            "number": number,
            "country": country,
            "zip_code": _zip_codes(rng, country),
            "root_parent_id": root_parent,
            "segment": SEGMENTS[rng.integers(0, len(SEGMENTS), count)],
            "sales_rep": SALES_REPS[rng.integers(0, len(SALES_REPS), count)],
        }
    )
    legal = pl.col("country").replace_strict(LEGAL_FORMS, return_dtype=pl.String)
    slug = pl.concat_str(pl.col("adjective"), pl.col("noun"), pl.col("number"), separator="-")
    frame = frame.with_columns(
        name=pl.concat_str("adjective", "noun", "number", legal, separator=" "),
        email=pl.lit("billing@") + slug.str.to_lowercase() + pl.lit(".example"),
        custom_properties=pl.struct("segment", "sales_rep").struct.json_encode(),
        source_file=pl.lit(None, pl.String),
        source_line=pl.lit(None, pl.Int64),
    )
    return frame.select(frames.canonical_schema("customers").names()), currency


def _zip_codes(rng: np.random.Generator, country: np.ndarray) -> pl.Series:
    """Postal codes that look like each country's (5 digits by default, kept as text)."""
    codes = np.char.zfill(rng.integers(1000, 99999, country.size).astype("U5"), 5)
    codes = codes.astype(object)
    for code, pattern in ZIP_PATTERNS.items():
        rows = np.flatnonzero(country == code)
        if rows.size:
            codes[rows] = _from_pattern(rng, pattern, rows.size)
    return pl.Series(codes.astype(str), dtype=pl.String)


def _from_pattern(rng: np.random.Generator, pattern: str, count: int) -> np.ndarray:
    """`count` strings following `pattern` (9 = a digit, A = a capital letter)."""
    alphabet = {"9": np.array(list("0123456789")), "A": np.array(list("ABCDEFGHJKLMNPRSTUVWXY"))}
    text = np.full(count, "", dtype=object)
    for char in pattern:
        pool = alphabet.get(char)
        text = text + (pool[rng.integers(0, pool.size, count)] if pool is not None else char)
    return text


def _subscriptions(
    rng: np.random.Generator,
    draws: Draws,
    layout: Layout,
    kept: np.ndarray,
    anchor: np.ndarray,
    customer_currency: np.ndarray,
) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """Subscriptions (without customer_id yet) and the facts invoices are built from."""
    count = kept.size
    interval = layout.interval[kept]
    start_month = layout.start_month[kept]
    is_open = layout.is_open[kept]
    start = month_day(start_month, anchor)
    end = month_day(start_month + layout.periods[kept] * interval, anchor)
    end = np.where(is_open, np.datetime64("NaT"), end)
    switch = _is_switch(draws, layout, kept)
    tier, quantity = _plans(rng, switch, interval, count)
    currency = customer_currency[draws.customer[kept]]
    price = MONTHLY_PRICE_CENTS[currency, tier] * interval * quantity
    price = price * INTERVAL_DISCOUNT_PERCENT[interval] // 100
    discount = np.where(rng.random(count) < 0.1, rng.choice([10, 20], count), 0)
    price = (price * (100 - discount) + 50) // 100
    followed_by_switch = np.append(switch[1:], False)
    status = np.where(is_open, 0, np.where(followed_by_switch, 4, 3))  # active, ended, cancelled
    cancelled_at = end - rng.integers(1, 26, count)
    cancelled_at = np.where(status == 3, np.maximum(cancelled_at, start), np.datetime64("NaT"))
    number = numbers_in_order(np.arange(count), start)
    frame = pl.DataFrame(
        {
            "id": format_ids(SUBSCRIPTION_PREFIX, number, SUBSCRIPTION_WIDTH),
            "customer_id": pl.Series([None] * count, dtype=pl.String),
            "plan_id": np.char.add(np.char.add(TIERS[tier], "-"), INTERVAL_NAMES[interval]),
            "status": enum_series(frames.SUBSCRIPTION_STATUSES, status),
            "start_date": start,
            "end_date": end,
            "cancelled_at": cancelled_at,
            "interval_unit": enum_series(frames.INTERVAL_UNITS, np.where(interval == 12, 3, 2)),
            "interval_count": np.where(interval == 12, 1, interval),
            "quantity": quantity,
            "amount_excluding_tax": to_money(price),
            "currency": CURRENCIES[currency],
            "custom_properties": pl.select(
                pl.struct(
                    channel=pl.Series(CHANNELS[rng.integers(0, 3, count)])
                ).struct.json_encode()
            ).to_series(),
            "source_file": pl.Series([None] * count, dtype=pl.String),
            "source_line": pl.Series([None] * count, dtype=pl.Int64),
        }
    )
    facts = {
        "start_month": start_month,
        "anchor": anchor,
        "interval": interval,
        "billed": layout.billed[kept],
        "price": price,
        "is_active": status == 0,
    }
    return frame, facts


def _is_switch(draws: Draws, layout: Layout, kept: np.ndarray) -> np.ndarray:
    """Kept subscriptions that start the day the previous one of the same customer ended."""
    position = kept - draws.group_start[kept]
    return (position > 0) & ~draws.reactivation[kept]


def _plans(
    rng: np.random.Generator, switch: np.ndarray, interval: np.ndarray, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Tier and quantity per subscription; a switch moves one tier up or down from the previous."""
    fresh_tier = rng.choice(len(TIERS), size=count, p=TIER_SHARES)
    step = np.where(rng.random(count) < UPGRADE_SHARE, 1, -1)
    run_first = np.maximum.accumulate(np.where(~switch, np.arange(count), 0))
    tier = np.clip(cumsum_within(np.where(switch, step, fresh_tier), run_first), 0, len(TIERS) - 1)
    quantity = np.where(rng.random(count) < 0.6, 1, rng.integers(2, 21, count))
    previous = np.roll(np.arange(count), 1)
    same_price = (
        switch
        & (tier == tier[previous])
        & (interval == interval[previous])
        & (quantity == quantity[previous])
    )
    return tier, quantity + same_price


def _invoices(
    rng: np.random.Generator, subscriptions: pl.DataFrame, facts: dict[str, np.ndarray]
) -> pl.DataFrame:
    """One invoice per billing period before AS_OF, plus a few one-off invoices; ids by date."""
    billed = facts["billed"]
    sub_index = np.repeat(np.arange(subscriptions.height), billed)
    k = np.arange(sub_index.size) - np.repeat(np.cumsum(billed) - billed, billed)
    interval = facts["interval"][sub_index]
    month = facts["start_month"][sub_index] + k * interval
    anchor = facts["anchor"][sub_index]
    period_start = month_day(month, anchor)
    period_end = month_day(month + interval, anchor)
    early = np.where(rng.random(sub_index.size) < 0.2, rng.integers(1, 6, sub_index.size), 0)

    one_off_sub, one_off_issue = _one_offs(rng, subscriptions, round(sub_index.size * 0.02))
    one_offs = one_off_sub.size
    sub_all = np.concatenate([sub_index, one_off_sub])
    issue = np.concatenate([period_start - early, one_off_issue])
    # Invoice numbers follow the issue date (ties keep generation order), as in real ledgers.
    order = np.argsort(issue.astype(np.int64) * issue.size + np.arange(issue.size))
    sub_all, issue = sub_all[order], issue[order]
    nat = np.full(one_offs, np.datetime64("NaT"), dtype="datetime64[D]")
    one_off_amount = ONE_OFF_CENTS[rng.integers(0, ONE_OFF_CENTS.size, one_offs)]
    amount = np.concatenate([facts["price"][sub_index], one_off_amount])[order]
    status = _invoice_status(rng, issue, facts["is_active"][sub_all])
    sub_columns = subscriptions.select("customer_id", "id", "currency")[sub_all]
    return pl.DataFrame(
        {
            "id": format_ids(INVOICE_PREFIX, np.arange(1, issue.size + 1), INVOICE_WIDTH),
            "customer_id": sub_columns["customer_id"],
            "subscription_id": sub_columns["id"],
            "issue_date": issue,
            "due_date": issue + DUE_DAYS,
            "status": enum_series(frames.INVOICE_STATUSES, status),
            "type": enum_series(
                frames.INVOICE_TYPES, np.repeat([0, 1], [sub_index.size, one_offs])[order]
            ),
            "period_start": np.concatenate([period_start, nat])[order],
            "period_end": np.concatenate([period_end, nat])[order],
            "amount_excluding_tax": to_money(amount),
            "tax_amount": to_money((amount * TAX_PERCENT + 50) // 100),
            "currency": sub_columns["currency"],
            "custom_properties": pl.repeat("{}", issue.size, eager=True),
            "source_file": pl.repeat(None, issue.size, dtype=pl.String, eager=True),
            "source_line": pl.repeat(None, issue.size, dtype=pl.Int64, eager=True),
        }
    )


def _one_offs(
    rng: np.random.Generator, subscriptions: pl.DataFrame, count: int
) -> tuple[np.ndarray, np.ndarray]:
    """Subscription index and issue date of one-off invoices (setup, training, consulting fees).

    A one-off belongs to a customer and references the subscription it was sold with (the API
    wants every invoice linked to a subscription); it is issued while that subscription runs.
    """
    count = max(1, count) if subscriptions.height else 0
    sub = rng.integers(0, subscriptions.height, count)
    start = subscriptions["start_date"].to_numpy()[sub]
    stop = subscriptions["end_date"].to_numpy()[sub]
    stop = np.where(np.isnat(stop), _AS_OF_DAY, np.minimum(stop, _AS_OF_DAY))
    span = (stop - start).astype(np.int64)
    return sub, start + (rng.random(count) * span).astype(np.int64)


def _invoice_status(
    rng: np.random.Generator, issue: np.ndarray, subscription_active: np.ndarray
) -> np.ndarray:
    """open (0) while not due, sometimes unpaid (2) when overdue, paid (1) otherwise.

    Only invoices of subscriptions still active can be open or unpaid: a cancelled subscription
    with an open invoice is one of the defects the audit looks for.
    """
    age = (_AS_OF_DAY - issue).astype(np.int64)
    draw = rng.random(issue.size)
    not_due = age < DUE_DAYS
    recent_overdue = (age >= DUE_DAYS) & (age < 90)
    status = np.where(not_due & (draw < 0.55), 0, np.where(recent_overdue & (draw < 0.08), 2, 1))
    return np.where(subscription_active, status, 1)
