"""Exchange-rate tables for reporting MRR in one currency.

A rate table has the columns `date, currency, rate` with the ECB convention: `rate` is the number of
units of `currency` worth one unit of the reporting currency (EUR 1 = USD 1.0834 gives the row
`2025-01-31,USD,1.0834` when reporting in EUR), and converted amount = amount ÷ rate. The rate used
for a date is the latest one on or before it. The reporting currency itself needs no row.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from fincome_toolkit.errors import InputError

RATE_SCHEMA = {"date": pl.Date(), "currency": pl.String(), "rate": pl.Decimal(38, 10)}


def load_fx_rates(path: str | Path) -> pl.DataFrame:
    """Read a rate table (CSV: `date, currency, rate`; ISO dates; `,` or `.` decimals)."""
    path = Path(path)
    try:
        raw = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise InputError(f"cannot read the rate table: {error}", where=str(path)) from None
    raw = raw.rename({name: name.strip().lower() for name in raw.columns})
    missing = [name for name in RATE_SCHEMA if name not in raw.columns]
    if missing:
        raise InputError(
            f"the rate table has no column {', '.join(missing)} (found: {', '.join(raw.columns)})",
            where=str(path),
            fix="use a CSV with the header date,currency,rate",
        )
    rates = raw.select(
        date=pl.col("date").str.strip_chars().str.to_date("%Y-%m-%d", strict=False),
        currency=pl.col("currency").str.strip_chars().str.to_uppercase(),
        rate=pl.col("rate")
        .str.strip_chars()
        .str.replace(",", ".")
        .cast(RATE_SCHEMA["rate"], strict=False),
        _line=pl.int_range(2, pl.len() + 2),
    )
    bad = rates.filter(pl.any_horizontal(pl.all().is_null()) | (pl.col("rate") <= 0))
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(
            f"{bad.height} rate row(s) have an unreadable date, currency or rate (not > 0)",
            where=f"{path}, line {row['_line']}",
            fix="dates as YYYY-MM-DD, currency codes like USD, positive rates",
        )
    return rates.drop("_line").sort("currency", "date")


def rates_at(keys: pl.DataFrame, rates: pl.DataFrame, reporting: str) -> pl.DataFrame:
    """Attach `_rate` to `keys` (`currency`, `_date`): the latest rate on or before the date."""
    foreign = keys.filter(pl.col("currency") != reporting).sort("currency", "_date")
    matched = foreign.join_asof(
        rates.rename({"date": "_date"}).sort("currency", "_date"),
        on="_date",
        by="currency",
        strategy="backward",
        check_sortedness=False,  # both sides are sorted by (currency, date) just above
    )
    unmatched = matched.filter(pl.col("rate").is_null())
    if unmatched.height:
        first = unmatched.group_by("currency").agg(pl.col("_date").min()).sort("currency")
        needed = ", ".join(f"{row[0]} on or before {row[1]}" for row in first.iter_rows())
        raise InputError(
            f"no exchange rate to {reporting} for {needed}",
            fix="add these rows to the rate table (date,currency,rate)",
        )
    own = keys.filter(pl.col("currency") == reporting).with_columns(
        rate=pl.lit(1, RATE_SCHEMA["rate"])
    )
    return pl.concat([matched, own]).rename({"rate": "_rate"})
