"""Seeded generator of realistic billing histories, clean or with planted defects and a manifest.

`generate` builds three years of customers, subscriptions and invoices ending at the fixed date
`AS_OF` (never today's date: the same seed gives the same data forever). With `defects=True` it
plants a handful of each defect kind of CONTRIBUTING.md and lists each one in a manifest, so that
the loader and the audit can be tested against a known truth. `write_export` (sample_export.py)
writes the result the way real exports look; `write_sample` does both in one call.

    result = generate(customers=200, seed=0)
    result.dataset.invoices        # canonical frames: what the loader must read back
    result.manifest                # kind, frame, id, column, detail: one row per planted defect
    write_export(result, "out/")   # factures.csv, abonnements.json, clients.xlsx, mapping.toml...

Sizes are targets: the number of invoices follows from the histories and lands within a few
percent of the request. Without sizes, 200 customers, 300 subscriptions and 3,000 invoices.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from fincome_toolkit.errors import ConfigError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.sample_defect_kinds import DEFECT_KINDS, plant_defects
from fincome_toolkit.sample_defects import MANIFEST_SCHEMA
from fincome_toolkit.sample_export import ExportFormats, ExportStyle, write_export
from fincome_toolkit.sample_history import AS_OF, HISTORY_START, build_history
from fincome_toolkit.sample_layout import calibrate, draw_histories, reachable_invoices

__all__ = [
    "AS_OF",
    "DEFECT_KINDS",
    "HISTORY_START",
    "SampleResult",
    "generate",
    "write_export",
    "write_sample",
]

DEFAULT_CUSTOMERS = 200
SUBSCRIPTIONS_PER_CUSTOMER = 1.5
INVOICES_PER_SUBSCRIPTION = 10
ONE_OFF_SHARE = 0.02  # of all invoices
SIZE_TOLERANCE = 0.1  # how far the invoice count may land from the request


@dataclass(frozen=True)
class SampleResult:
    """A generated billing history: the canonical truth, its manifest of defects, its dates.

    `dataset` is exactly what the loader must produce when reading the written export back: the
    planted parse-level defects are nulls in the frames and rows in `dataset.parse_issues` (file
    and line unknown until written). `manifest` has one row per planted defect
    (`kind, frame, id, column, detail`), empty for clean data.
    """

    dataset: Dataset
    manifest: pl.DataFrame
    as_of: date
    seed: int
    history_start: date = HISTORY_START

    @property
    def counts(self) -> dict[str, int]:
        """Rows per frame, e.g. for a summary line."""
        return {name: frame.height for name, frame in self.dataset.frames().items()}


def generate(
    *,
    customers: int | None = None,
    subscriptions: int | None = None,
    invoices: int | None = None,
    seed: int = 0,
    defects: bool = True,
    defects_per_kind: int = 3,
) -> SampleResult:
    """Generate a billing history of about the requested size, deterministic for a given seed.

    Missing sizes follow from the given ones (1.5 subscriptions per customer, 10 invoices per
    subscription); with none given, 200 customers. Raises `ConfigError` for sizes that cannot make a
    consistent three-year history (fewer subscriptions than customers, more invoices than fit).
    """
    invoices_asked = invoices is not None
    customers, subscriptions, invoices = resolve_sizes(customers, subscriptions, invoices)
    rng = np.random.default_rng(seed)
    draws = draw_histories(rng, customers, subscriptions)
    recurring_target = round(invoices * (1 - ONE_OFF_SHARE))
    layout = calibrate(draws, recurring_target)
    off_target = abs(layout.invoices - recurring_target) > SIZE_TOLERANCE * recurring_target
    if invoices_asked and off_target:  # a derived default is only a wish: take the closest
        fewest, most = (round(n / (1 - ONE_OFF_SHARE)) for n in reachable_invoices(draws))
        raise ConfigError(
            f"{invoices:,} invoices cannot be spread over {subscriptions:,} subscriptions of "
            f"{customers:,} customers in three years",
            where="sample generator",
            fix=f"ask for between {fewest:,} and {most:,} invoices for these sizes, or change "
            "the number of customers (at most about 25 invoices per customer fit in 3 years)",
        )
    history = build_history(rng, draws, layout)
    if not defects:
        dataset = Dataset(history.customers, history.subscriptions, history.invoices)
        return SampleResult(dataset, pl.DataFrame(schema=MANIFEST_SCHEMA), AS_OF, seed)
    dataset, manifest = plant_defects(history, rng, per_kind=defects_per_kind)
    return SampleResult(dataset, manifest, AS_OF, seed)


def resolve_sizes(
    customers: int | None, subscriptions: int | None, invoices: int | None
) -> tuple[int, int, int]:
    """Fill in missing sizes from the given ones and check they can be generated."""
    if customers is None:
        if subscriptions is not None:
            customers = round(subscriptions / SUBSCRIPTIONS_PER_CUSTOMER)
        elif invoices is not None:
            per_customer = SUBSCRIPTIONS_PER_CUSTOMER * INVOICES_PER_SUBSCRIPTION
            customers = round(invoices / per_customer)
        else:
            customers = DEFAULT_CUSTOMERS
    if subscriptions is None:
        subscriptions = round(customers * SUBSCRIPTIONS_PER_CUSTOMER)
    if invoices is None:
        invoices = subscriptions * INVOICES_PER_SUBSCRIPTION
    if customers < 1:
        raise ConfigError(
            f"cannot generate {customers} customers", fix="ask for at least 1 customer"
        )
    if not customers <= subscriptions <= 8 * customers:
        raise ConfigError(
            f"{subscriptions:,} subscriptions for {customers:,} customers: every customer needs "
            "at least one subscription and at most eight",
            fix="ask for between 1 and 8 subscriptions per customer",
        )
    return customers, subscriptions, invoices


def write_sample(
    out_dir: str | Path,
    *,
    customers: int | None = None,
    subscriptions: int | None = None,
    invoices: int | None = None,
    seed: int = 0,
    defects: bool = True,
    style: ExportStyle = "erp",
    formats: ExportFormats = None,
) -> SampleResult:
    """Generate a history and write it as an export in `out_dir` (`fincome-toolkit sample`)."""
    result = generate(
        customers=customers,
        subscriptions=subscriptions,
        invoices=invoices,
        seed=seed,
        defects=defects,
    )
    write_export(result, out_dir, style=style, formats=formats)
    return result
