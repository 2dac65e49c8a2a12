"""Planting known defects in a clean sample history, with a manifest row for each.

Each defect kind of CONTRIBUTING.md ("Planted defect kinds") is planted `per_kind` times on records
that carry no other defect: a record chosen once is never chosen again, and a subscription chosen
for an invoice-level defect gives no other invoice to another kind, so defects never mask each
other. Referential defects cascade where reality does (the invoices of a subscription whose
customer is missing also reference that missing customer); the manifest lists the planted record.

Parse-level kinds are nulls in the canonical truth, rows in `Dataset.parse_issues`, and raw text
in the written export (the manifest's `detail` is that exact text).
"""

from __future__ import annotations

from calendar import monthrange
from dataclasses import InitVar, dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.sample_history import (
    CUSTOMER_PREFIX,
    CUSTOMER_WIDTH,
    INVOICE_PREFIX,
    INVOICE_WIDTH,
    SUBSCRIPTION_PREFIX,
    SUBSCRIPTION_WIDTH,
    TAX_PERCENT,
    History,
    format_ids,
)

MANIFEST_SCHEMA = pl.Schema(
    {
        "kind": pl.String,
        "frame": pl.String,
        "id": pl.String,
        "column": pl.String,
        "detail": pl.String,
    }
)

# Raw text written in the export for each parse-level kind: (frame, column, values, loader reason).
PARSE_LEVEL: dict[str, tuple[str, str, tuple[str, ...], str]] = {
    "unparseable_date": (
        "invoices", "due_date", ("31/02/2025", "32/01/2024", "31/04/2025", "le 5 mars"),
        "not a date",
    ),
    "unparseable_amount": (
        "invoices", "amount_excluding_tax", ("12,34,5", "#VALEUR!", "douze", "3,14,15"),
        "not an amount",
    ),
    "unknown_status": (
        "invoices", "status", ("en litige", "brouillon", "???", "à vérifier"),
        "unknown invoice status",
    ),
    "unknown_currency": (
        "invoices", "currency", ("Zorkmid", "Doubloon", "Galleon", "Sesterce"), "unknown currency",
    ),
    "unknown_country": (
        "customers", "country", ("Atlantis", "Mordor", "Narnia", "El Dorado"), "unknown country",
    ),
}  # fmt: skip

ROW = "_row"
ANY = pl.lit(True)  # no condition on a choice of records
RECURRING = pl.col("type") == "subscription"


POOL_CUSTOMERS = 5_000  # defects are planted among this many random customers (all, if fewer)


@dataclass
class Planter:
    """Working state: the clean frames (with a `_row` index), what is taken, what changes.

    Records are chosen in a pool of customers with all their subscriptions and invoices, so that
    choosing never scans ten million invoices again; with few customers the pool is all of them.
    """

    history: InitVar[History]
    rng: np.random.Generator
    per_kind: int
    frames: dict[str, pl.DataFrame] = field(init=False)
    subs: pl.DataFrame = field(init=False)  # per-subscription facts, in the pool
    customer_facts: pl.DataFrame = field(init=False)  # per-customer facts, in the pool
    pool_invoices: pl.DataFrame = field(init=False)
    used_customers: set[str] = field(default_factory=set)  # their record carries a defect
    locked_customers: set[str] = field(default_factory=set)  # their subscriptions are off-limits
    used_subscriptions: set[str] = field(default_factory=set)
    edits: dict[tuple[str, str], dict[int, Any]] = field(default_factory=dict)
    appended: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deleted: dict[str, set[int]] = field(default_factory=dict)
    manifest: list[tuple[str, str, str, str | None, str]] = field(default_factory=list)
    parse_issues: list[dict[str, Any]] = field(default_factory=list)
    new_customers: int = 0
    new_invoices: int = 0
    unknown_ids: int = 0

    def __post_init__(self, history: History) -> None:
        self.frames = {
            name: frame.with_row_index(ROW).with_columns(pl.col(ROW).cast(pl.Int64))
            for name, frame in (
                ("customers", history.customers),
                ("subscriptions", history.subscriptions),
                ("invoices", history.invoices),
            )
        }
        customers = self.frames["customers"]
        if customers.height > POOL_CUSTOMERS:
            customers = customers[np.sort(self.rng.choice(customers.height, POOL_CUSTOMERS, False))]
        subscriptions = self.frames["subscriptions"].filter(
            pl.col("customer_id").is_in(customers["id"].implode())
        )
        self.pool_invoices = self.frames["invoices"].filter(
            pl.col("subscription_id").is_in(subscriptions["id"].implode())
        )
        self.subs = _subscription_facts(subscriptions, self.pool_invoices)
        parents = self.frames["customers"]["root_parent_id"].drop_nulls().unique()
        self.customer_facts = _customer_facts(customers, self.subs, parents)
        showcase = self.subs.filter(pl.col("start_date") == date(2024, 1, 31))
        self.locked_customers |= set(showcase["customer_id"].to_list())  # keep the 31-Jan case

    # -- choosing records --------------------------------------------------------------------

    def _choose(self, candidates: pl.DataFrame, count: int, kind: str) -> pl.DataFrame:
        if candidates.height < count:
            raise ConfigError(
                f"the sample is too small to plant {count} '{kind}' defects "
                f"(only {candidates.height} suitable records)",
                where="sample generator",
                fix="generate at least 80 customers (about 1,600 invoices), or plant fewer per "
                "kind: defects_per_kind=1 works from about 40 customers",
            )
        return candidates[np.sort(self.rng.choice(candidates.height, count, replace=False))]

    def customers(
        self,
        kind: str,
        where: pl.Expr = ANY,
        *,
        count: int | None = None,
        lock: bool = False,
    ) -> pl.DataFrame:
        """Customers free of any defect; `lock` also reserves their subscriptions and invoices."""
        taken = list(self.used_customers | self.locked_customers)
        free = self.customer_facts.filter(where & ~pl.col("id").is_in(taken))
        if lock:
            busy = self.subs.filter(pl.col("id").is_in(list(self.used_subscriptions)))
            free = free.filter(~pl.col("id").is_in(busy["customer_id"].implode()))
        chosen = self._choose(free, count or self.per_kind, kind)
        self.used_customers |= set(chosen["id"].to_list())
        if lock:
            self.locked_customers |= set(chosen["id"].to_list())
        return chosen

    def subscriptions(
        self, kind: str, where: pl.Expr = ANY, *, count: int | None = None
    ) -> pl.DataFrame:
        """Subscriptions whose record, invoices and customer's subscriptions are free."""
        free = self.subs.filter(
            where,
            ~pl.col("id").is_in(list(self.used_subscriptions)),
            ~pl.col("customer_id").is_in(list(self.locked_customers)),
        )
        chosen = self._choose(free, count or self.per_kind, kind)
        self.used_subscriptions |= set(chosen["id"].to_list())
        return chosen

    def invoices(
        self, kind: str, *, sub_where: pl.Expr = ANY, where: pl.Expr = RECURRING
    ) -> pl.DataFrame:
        """One invoice from each of `per_kind` free subscriptions; `where` may use `k` (0-based
        position among the subscription's recurring invoices) and `n` (their count)."""
        subs = self.subscriptions(kind, sub_where & (pl.col("n_rec") > 0))
        invoices = self.invoices_of(subs["id"])
        candidates = invoices.filter(where)
        picked = []
        for sub_id in subs["id"]:
            own = candidates.filter(pl.col("subscription_id") == sub_id)
            if own.height == 0:
                raise ConfigError(f"no invoice suitable for '{kind}' in {sub_id}")
            picked.append(own[int(self.rng.integers(own.height))])
        return pl.concat(picked)

    def invoices_of(self, subscription_ids: pl.Series) -> pl.DataFrame:
        """Invoices of the given subscriptions, with `k` and `n` for the recurring ones."""
        return (
            self.pool_invoices.filter(pl.col("subscription_id").is_in(subscription_ids.implode()))
            .sort("subscription_id", "type", "period_start", ROW)
            .with_columns(
                k=pl.int_range(pl.len()).over("subscription_id", "type"),
                n=pl.len().over("subscription_id", "type"),
            )
        )

    # -- changing records --------------------------------------------------------------------

    def set(self, frame: str, row: int, column: str, value: Any) -> None:
        """Change one value of an original row."""
        self.edits.setdefault((frame, column), {})[row] = value

    def append(self, frame: str, row: dict[str, Any], **changes: Any) -> None:
        """Add a copy of `row` (a dict of an original row) with some values changed."""
        columns = self.frames[frame].columns
        copy = {column: row.get(column) for column in columns}
        self.appended.setdefault(frame, []).append({**copy, ROW: None, **changes})

    def delete(self, frame: str, rows: list[int]) -> None:
        """Remove original rows."""
        self.deleted.setdefault(frame, set()).update(rows)

    def note(self, kind: str, frame: str, record_id: str, column: str | None, detail: str) -> None:
        """One manifest row."""
        self.manifest.append((kind, frame, record_id, column, detail))

    def unreadable(self, kind: str, row: dict[str, Any], raw: str) -> None:
        """A parse-level defect on `row`: null value, manifest row, predicted parse issue."""
        frame, column, _, reason = PARSE_LEVEL[kind]
        self.set(frame, row[ROW], column, None)
        self.note(kind, frame, row["id"], column, raw)
        issue = (frame, None, None, row["id"], column, raw, f"{reason} (planted: {kind})")
        self.parse_issues.append(dict(zip(frames.PARSE_ISSUE_SCHEMA, issue, strict=True)))

    def new_customer_id(self) -> str:
        """The next customer id after the generated ones."""
        self.new_customers += 1
        number = self.frames["customers"].height + self.new_customers
        return format_ids(CUSTOMER_PREFIX, [number], CUSTOMER_WIDTH)[0]

    def new_invoice_id(self) -> str:
        """The next invoice id after the generated ones."""
        self.new_invoices += 1
        number = self.frames["invoices"].height + self.new_invoices
        return format_ids(INVOICE_PREFIX, [number], INVOICE_WIDTH)[0]

    def unknown_id(self, frame: str) -> str:
        """An id no record has: ten times the frame's size, plus a counter."""
        self.unknown_ids += 1
        number = self.frames[frame].height * 10 + self.unknown_ids
        prefix, width = {
            "customers": (CUSTOMER_PREFIX, CUSTOMER_WIDTH),
            "subscriptions": (SUBSCRIPTION_PREFIX, SUBSCRIPTION_WIDTH),
        }[frame]
        return format_ids(prefix, [number], width)[0]

    def result(self) -> tuple[Dataset, pl.DataFrame]:
        """Apply every change and return the dirty truth and the manifest."""
        self.pool_invoices = self.subs = self.customer_facts = pl.DataFrame()
        # each clean frame is released as soon as its dirty copy exists (peak memory)
        finished = {name: self._finish(name, self.frames.pop(name)) for name in list(self.frames)}
        issues = pl.DataFrame(self.parse_issues, schema=frames.PARSE_ISSUE_SCHEMA)
        manifest = pl.DataFrame(self.manifest, schema=MANIFEST_SCHEMA, orient="row")
        return Dataset(**finished, parse_issues=issues), manifest

    def _finish(self, name: str, frame: pl.DataFrame) -> pl.DataFrame:
        columns = []
        for column, dtype in frame.schema.items():
            series = frame[column]
            changes = self.edits.get((name, column))
            if changes:
                rows = sorted(changes)
                series = series.scatter(rows, pl.Series([changes[r] for r in rows], dtype=dtype))
            columns.append(series)
        added = pl.DataFrame(self.appended.get(name, []), schema=frame.schema)
        both = pl.concat([pl.DataFrame(columns), added], rechunk=False)
        # One gather drops the deleted rows, keeps the appended ones and yields a single chunk in
        # a single copy (polars 2.1 also panics in pl.format on some filtered multi-chunk frames).
        kept = np.setdiff1d(np.arange(frame.height), sorted(self.deleted.get(name, ())))
        rows = np.concatenate([kept, np.arange(frame.height, both.height)])
        return both[rows].drop(ROW)


def _subscription_facts(subscriptions: pl.DataFrame, invoices: pl.DataFrame) -> pl.DataFrame:
    """Per subscription: its months per interval and how many recurring / one-off invoices."""
    counts = invoices.group_by("subscription_id").agg(
        n_rec=RECURRING.sum().cast(pl.Int64),
        n_one_off=(~RECURRING).sum().cast(pl.Int64),
        last_start=pl.col("period_start").max(),
        last_end=pl.col("period_end").max(),
    )
    months = pl.when(pl.col("interval_unit") == "year").then(12).otherwise(pl.col("interval_count"))
    return subscriptions.join(
        counts, left_on="id", right_on="subscription_id", how="left"
    ).with_columns(
        pl.col("n_rec", "n_one_off").fill_null(0),
        months=months,
        status=pl.col("status").cast(pl.String),
    )


def _customer_facts(
    customers: pl.DataFrame, subs: pl.DataFrame, parents: pl.Series
) -> pl.DataFrame:
    """Per customer: subscription count, whether it is a parent or a child."""
    per_customer = subs.group_by("customer_id").agg(n_subs=pl.len().cast(pl.Int64))
    return customers.join(
        per_customer, left_on="id", right_on="customer_id", how="left"
    ).with_columns(
        pl.col("n_subs").fill_null(0),
        is_parent=pl.col("id").is_in(parents.implode()),
        is_child=pl.col("root_parent_id").is_not_null(),
    )


def add_months(start: date, months: int) -> date:
    """`start` moved by whole months, the day clamped to the month's end (like the generator)."""
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    return date(year, month, min(start.day, monthrange(year, month)[1]))


def tax_on(amount: Decimal) -> Decimal:
    """20% VAT rounded half-up to the cent."""
    return (amount * TAX_PERCENT / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
