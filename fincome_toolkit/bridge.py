"""MRR movements month by month: new, reactivation, expansion, contraction, churn (and FX).

Per customer, month M against M−1 (p = previous MRR, q = current), ../shared/domain.md §3:
new (p = 0 < q, never active before), reactivation (p = 0 < q, active before), expansion
(0 < p < q), contraction (0 < q < p), churn (p > 0 = q). With converted amounts, a customer whose
native MRR and currency did not change but whose converted MRR did is `fx` (the FX effect has its
own line) unless `fx="fold"` classes it as expansion or contraction like any other change.

Every month `end = start + new + reactivation + expansion − contraction − churn + fx`, exactly:
the movements are differences of the same rounded per-customer values that make up the totals.
Without conversion each currency has its own bridge (a `currency` column); `fx` is then zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

import polars as pl

from fincome_toolkit.customer_months import (
    add_stop_rows,
    decode_keys,
    encode_keys,
    sum_by_key_month,
)
from fincome_toolkit.errors import InputError
from fincome_toolkit.frames import MONEY, Dataset
from fincome_toolkit.metrics import (
    MrrOptions,
    Source,
    month_number,
    mrr_by_customer,
    with_month_dates,
)

CATEGORIES = ("new", "reactivation", "expansion", "contraction", "churn", "fx", "unchanged")
Category = pl.Enum(CATEGORIES)
AMOUNTS = ("new", "reactivation", "expansion", "contraction", "churn", "fx")
COUNTS = {
    "new_customers": "new",
    "reactivated_customers": "reactivation",
    "expanded_customers": "expansion",
    "contracted_customers": "contraction",
    "churned_customers": "churn",
}
BRIDGE_COLUMNS = (
    "month",
    "mrr",
    "customers",
    "new",
    "reactivation",
    "expansion",
    "contraction",
    "churn",
)


def _keys(mrr: pl.DataFrame) -> list[str]:
    """Who a bridge follows: a customer, per currency when amounts are not converted."""
    for column in ("customer_id", "month", "mrr"):
        if column not in mrr.columns:
            raise InputError(
                f"an MRR frame needs the columns customer_id, month, mrr; {column} is missing",
                fix="build it with mrr_by_customer(...)",
            )
    return ["customer_id", "currency"] if "currency" in mrr.columns else ["customer_id"]


def movement_detail(
    mrr: pl.DataFrame,
    *,
    until: date | None = None,
    fx: Literal["separate", "fold"] = "separate",
) -> pl.DataFrame:
    """One row per customer and month with MRR then or the month before, and its category.

    Columns: customer_id, month, [currency], previous_mrr, mrr, change, category (and the
    native columns when present). Months missing from `mrr` count as zero. `until` (default: the
    last month in `mrr`, whose zero rows mark the months customers stop) is the last month
    reported: pass it to see the churn after the last month of a frame without zero rows.
    """
    keys = _keys(mrr)
    native = {"native_mrr", "native_currency"} <= set(mrr.columns)
    coded, table = encode_keys(mrr, keys, order="month")
    frame = sum_by_key_month(
        coded.lazy().with_columns(month=month_number(pl.col("month"))),
        ["mrr", "native_mrr"] if native else ["mrr"],
    ).filter(pl.col("mrr") > 0)
    frame = frame.with_columns(
        pl.col(money).cast(MONEY) for money in ("mrr", "native_mrr")[: 1 + native]
    )
    if frame.is_empty():
        return _empty_detail(keys, native)
    last = _last_month(mrr, until)
    frame = add_stop_rows(frame.filter(pl.col("month") <= last), last)
    same_key = (pl.col("_key") == pl.col("_key").shift(1)).fill_null(False)
    consecutive = (pl.col("_pos").shift(1) == pl.col("_pos") - 1).fill_null(False)
    previous = pl.when(consecutive).then(pl.col("mrr").shift(1)).otherwise(pl.lit(0, MONEY))
    frame = frame.with_columns(
        previous_mrr=previous.cast(MONEY),
        _first=~same_key,  # rows are sorted, so a key's first row is its first active month
        _same_native=_same_native(consecutive) if native else pl.lit(False),
    )
    p, q = pl.col("previous_mrr"), pl.col("mrr")
    category = (
        pl.when((p == 0) & pl.col("_first"))
        .then(pl.lit("new", Category))
        .when(p == 0)
        .then(pl.lit("reactivation", Category))
        .when(q == 0)
        .then(pl.lit("churn", Category))
        .when(q == p)
        .then(pl.lit("unchanged", Category))
        .when(pl.col("_same_native") & (fx == "separate"))
        .then(pl.lit("fx", Category))
        .when(q > p)
        .then(pl.lit("expansion", Category))
        .otherwise(pl.lit("contraction", Category))
    )
    native_columns = ["native_currency", "native_mrr"] if native else []
    frame = with_month_dates(decode_keys(frame, table))
    return frame.select(
        pl.col("customer_id"),
        pl.col("month"),
        *[key for key in keys if key != "customer_id"],
        p.alias("previous_mrr"),
        q.cast(MONEY).alias("mrr"),
        (q - p).cast(MONEY).alias("change"),
        category.alias("category"),
        *native_columns,
    )


def _last_month(mrr: pl.DataFrame, until: date | None) -> int:
    """`until`, else the last month of the frame (zero rows included: they mark churn months)."""
    last = until or mrr["month"].max()
    return last.year * 12 + last.month - 1  # type: ignore[union-attr]


def _same_native(consecutive: pl.Expr) -> pl.Expr:
    """The native MRR and currency are those of the previous month (only rates moved)."""
    return (
        consecutive
        & (pl.col("native_mrr") == pl.col("native_mrr").shift(1))
        & (pl.col("native_currency") == pl.col("native_currency").shift(1))
    ).fill_null(False)


def _empty_detail(keys: list[str], native: bool) -> pl.DataFrame:
    schema = {"customer_id": pl.String(), "month": pl.Date()}
    if "currency" in keys:
        schema["currency"] = pl.String()
    schema |= {"previous_mrr": MONEY, "mrr": MONEY, "change": MONEY, "category": Category}
    if native:
        schema |= {"native_currency": pl.String(), "native_mrr": MONEY}
    return pl.DataFrame(schema=schema)


def monthly_movements(detail: pl.DataFrame) -> pl.DataFrame:
    """Sum a `movement_detail` frame per month (and currency) into the MRR bridge.

    Columns: [currency], month, start_mrr, new, reactivation, expansion, contraction, churn, fx,
    end_mrr (contraction and churn are positive amounts), then customer counts: start_customers,
    new/reactivated/expanded/contracted/churned_customers, customers (MRR > 0 at the month's end).
    One row per month from the first month with MRR to the last month of the detail.
    """
    by = ["currency", "month"] if "currency" in detail.columns else ["month"]
    category, change = pl.col("category"), pl.col("change")
    # when/then (null elsewhere, which sums skip) is one pass per column; a filter per group
    # and category costs about twice as much on millions of rows.
    sums = {
        name: pl.when(category == name).then(change).sum()
        for name in ("new", "reactivation", "expansion", "fx")
    }
    sums["contraction"] = -pl.when(category == "contraction").then(change).sum()
    sums["churn"] = pl.when(category == "churn").then(pl.col("previous_mrr")).sum()
    counts = {name: (category == value).sum() for name, value in COUNTS.items()}
    summary = detail.group_by(by).agg(
        start_mrr=pl.col("previous_mrr").sum(),
        **sums,
        end_mrr=pl.col("mrr").sum(),
        start_customers=(pl.col("previous_mrr") > 0).sum(),
        **counts,
        customers=(pl.col("mrr") > 0).sum(),
    )
    calendar = _calendar(detail, by)
    amounts = ["start_mrr", *AMOUNTS, "end_mrr"]
    integers = ["start_customers", *COUNTS, "customers"]
    return (
        calendar.join(summary, on=by, how="left")
        .with_columns(
            *[pl.col(name).cast(MONEY).fill_null(0) for name in amounts],
            *[pl.col(name).cast(pl.Int64).fill_null(0) for name in integers],
        )
        .select(*by, "start_mrr", *AMOUNTS[:5], "fx", "end_mrr", *integers)
        .sort(by)
    )


def _calendar(detail: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Every month from the first with MRR to the last of the detail, per currency if any."""
    groups = by[:-1]
    active = pl.col("month").filter(pl.col("mrr") > 0)
    bounds = (
        detail.group_by(groups).agg(_from=active.min(), _to=pl.col("month").max())
        if groups
        else detail.select(_from=active.min(), _to=pl.col("month").max())
    )
    return (
        bounds.filter(pl.col("_from").is_not_null())
        .select(*groups, month=pl.date_ranges("_from", "_to", interval="1mo"))
        .explode("month")
    )


def movements(
    mrr: pl.DataFrame,
    *,
    until: date | None = None,
    fx: Literal["separate", "fold"] = "separate",
) -> pl.DataFrame:
    """The monthly MRR bridge of an MRR frame (see `movement_detail` and `monthly_movements`)."""
    return monthly_movements(movement_detail(mrr, until=until, fx=fx))


def bridge_table(monthly: pl.DataFrame) -> pl.DataFrame:
    """The bridge as analysts exchange it: `month,mrr,customers,new,reactivation,expansion,
    contraction,churn`, month as YYYY-MM, amounts as positive text with two decimals.

    An FX line (conversion with `fx="separate"`) has no column here: compute the movements with
    `fx="fold"` for this table so that its columns add up.
    """
    if "currency" in monthly.columns and monthly["currency"].n_unique() > 1:
        found = ", ".join(sorted(monthly["currency"].unique().to_list()))
        raise InputError(
            f"the MRR is in several currencies ({found}) and one table cannot add them up",
            fix="choose a reporting currency and a rate table (CLI: --currency CODE --rates FILE)",
        )
    if (monthly["fx"] != 0).any():
        raise InputError(
            "the movements carry an FX line that this table has no column for",
            fix='compute them with movements(..., fx="fold")',
        )
    money = [
        pl.col(name).cast(pl.String)
        for name in BRIDGE_COLUMNS
        if name not in ("month", "customers")
    ]
    return (
        monthly.rename({"end_mrr": "mrr"})
        .select(pl.col("month").dt.strftime("%Y-%m"), *money, pl.col("customers"))
        .select(BRIDGE_COLUMNS)
    )


@dataclass(frozen=True)
class Bridge:
    """Everything the `metrics` command shows: MRR per customer, the detail, the monthly bridge
    (FX on its own line) and the exchange table (FX folded into expansion/contraction)."""

    mrr: pl.DataFrame
    detail: pl.DataFrame
    monthly: pl.DataFrame
    table: pl.DataFrame


def compute_bridge(
    dataset: Dataset,
    *,
    source: Source = "subscriptions",
    options: MrrOptions | None = None,
    currency: str | None = None,
    rates: pl.DataFrame | None = None,
) -> Bridge:
    """MRR, movements and the `month,mrr,customers,...` table of a dataset in one currency.

    Several currencies without a reporting `currency` (and `rates`) are refused: one table
    cannot add euros and dollars.
    """
    options = options or MrrOptions()
    mrr = mrr_by_customer(dataset, source=source, options=options, currency=currency, rates=rates)
    found = sorted(mrr["currency"].drop_nulls().unique().to_list())
    if currency is None and len(found) > 1:
        raise InputError(
            f"the {source} are in several currencies ({', '.join(found)})",
            fix="choose a reporting currency and give exchange rates: "
            "--currency EUR --rates rates.csv (columns date,currency,rate)",
        )
    detail = movement_detail(mrr)
    monthly = monthly_movements(detail)
    folded = monthly if currency is None else movements(mrr, fx="fold")
    return Bridge(mrr=mrr, detail=detail, monthly=monthly, table=bridge_table(folded))


def terminal_lines(monthly: pl.DataFrame, *, last: int = 12) -> list[str]:
    """The last `last` months of the bridge as aligned text lines (one block per currency)."""
    names = ["mrr", "customers", "new", "reactivation", "expansion", "contraction", "churn"]
    with_fx = bool((monthly["fx"] != 0).any())
    if with_fx:
        names.append("fx")
    lines = []
    groups = monthly.partition_by("currency") if "currency" in monthly.columns else [monthly]
    for group in groups:
        if "currency" in group.columns and group.height:
            lines.append(f"MRR bridge in {group['currency'][0]} (last {last} months)")
        shown = group.sort("month").tail(last).rename({"end_mrr": "mrr"})
        lines.append(f"{'month':<9}" + "".join(f"{name:>14}" for name in names))
        for row in shown.iter_rows(named=True):
            cells = "".join(f"{_cell(row[name]):>14}" for name in names)
            lines.append(f"{row['month']:%Y-%m}  " + cells)
    return lines


def _cell(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.2f}"
