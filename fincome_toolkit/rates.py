"""SaaS rates from the MRR bridge, trailing-12-month retention and cohort tables.

Definitions (../shared/domain.md §3): ARR = 12 × MRR; ARPA = MRR ÷ customers with MRR > 0; logo
churn = churned customers ÷ customers active at the start of the month; gross MRR churn = (churn +
contraction) ÷ start MRR; net MRR churn = (churn + contraction − expansion − reactivation) ÷ start;
NRR = (start + expansion − contraction − churn) ÷ start; GRR = (start − contraction − churn) ÷
start. Ratios are floats (null when the denominator is zero); money stays Decimal.

Trailing 12 months follow the customers active 12 months earlier: NRR₁₂ = their MRR now ÷ their
MRR then; GRR₁₂ caps each customer at the earlier MRR. A customer's cohort is the month of its
first MRR > 0. Frames with a `currency` column are computed per currency.
"""

from __future__ import annotations

import polars as pl

from fincome_toolkit.frames import MONEY
from fincome_toolkit.metrics import WORK, to_cents

RATE_COLUMNS = (
    "arr",
    "arpa",
    "logo_churn",
    "gross_mrr_churn",
    "net_mrr_churn",
    "nrr",
    "grr",
)


def _ratio(numerator: pl.Expr, denominator: pl.Expr) -> pl.Expr:
    """numerator ÷ denominator as a float, null when the denominator is zero."""
    return (
        pl.when(denominator != 0)
        .then(numerator.cast(pl.Float64) / denominator.cast(pl.Float64))
        .otherwise(None)
    )


def _groups(frame: pl.DataFrame) -> list[str]:
    return ["currency"] if "currency" in frame.columns else []


def monthly_rates(monthly: pl.DataFrame) -> pl.DataFrame:
    """Rates per month from `movements(...)`: month, [currency], mrr, customers, then
    arr, arpa, logo_churn, gross_mrr_churn, net_mrr_churn, nrr, grr."""
    start = pl.col("start_mrr")
    churn, contraction = pl.col("churn"), pl.col("contraction")
    expansion, reactivation = pl.col("expansion"), pl.col("reactivation")
    return monthly.select(
        *_groups(monthly),
        "month",
        mrr=pl.col("end_mrr"),
        customers=pl.col("customers"),
        arr=(pl.col("end_mrr") * 12).cast(MONEY),
        arpa=pl.when(pl.col("customers") > 0)
        .then(to_cents(pl.col("end_mrr").cast(WORK) / pl.col("customers")))
        .otherwise(None),
        logo_churn=_ratio(pl.col("churned_customers"), pl.col("start_customers")),
        gross_mrr_churn=_ratio(churn + contraction, start),
        net_mrr_churn=_ratio(churn + contraction - expansion - reactivation, start),
        nrr=_ratio(start + expansion - contraction - churn, start),
        grr=_ratio(start - contraction - churn, start),
    )


def _active(mrr: pl.DataFrame) -> pl.DataFrame:
    """Customer-months with MRR > 0 (drops the zero rows that mark churn months)."""
    keys = [*_groups(mrr), "customer_id"]
    return mrr.group_by(*keys, "month").agg(pl.col("mrr").sum()).filter(pl.col("mrr") > 0)


def trailing_rates(mrr: pl.DataFrame, *, months: int = 12) -> pl.DataFrame:
    """Trailing retention of the customers active `months` earlier, per month.

    Columns: month, [currency], base_customers, base_mrr (their MRR then), retained_customers,
    retained_mrr (their MRR now), capped_mrr (each capped at its earlier MRR), nrr, grr,
    logo_retention, logo_churn. Months without a base `months` earlier are left out.
    """
    groups = _groups(mrr)
    keys = [*groups, "customer_id"]
    active = _active(mrr)
    last = active["month"].max()
    base = active.select(
        *keys, base_mrr=pl.col("mrr"), month=pl.col("month").dt.offset_by(f"{months}mo")
    ).filter(pl.col("month") <= last)
    joined = base.join(active, on=[*keys, "month"], how="left").with_columns(
        pl.col("mrr").fill_null(0)
    )
    summary = joined.group_by(*groups, "month").agg(
        base_customers=pl.len(),
        base_mrr=pl.col("base_mrr").sum().cast(MONEY),
        retained_customers=(pl.col("mrr") > 0).sum(),
        retained_mrr=pl.col("mrr").sum().cast(MONEY),
        capped_mrr=pl.min_horizontal("mrr", "base_mrr").sum().cast(MONEY),
    )
    return summary.with_columns(
        nrr=_ratio(pl.col("retained_mrr"), pl.col("base_mrr")),
        grr=_ratio(pl.col("capped_mrr"), pl.col("base_mrr")),
        logo_retention=_ratio(pl.col("retained_customers"), pl.col("base_customers")),
        logo_churn=1 - _ratio(pl.col("retained_customers"), pl.col("base_customers")),
    ).sort([*groups, "month"])


def cohorts(mrr: pl.DataFrame) -> pl.DataFrame:
    """Cohort retention in long form, one row per cohort and month since the cohort started.

    Columns: [currency], cohort (month of first MRR > 0), month, months_since, cohort_customers,
    cohort_mrr (the cohort's MRR in its first month), customers (still with MRR > 0), mrr,
    logo_retention, mrr_retention (net: expansion can take it above 1). Every month from the
    cohort's first to the last month of the data is present (zeros included).
    """
    groups = _groups(mrr)
    keys = [*groups, "customer_id"]
    active = _active(mrr).with_columns(cohort=pl.col("month").min().over(keys))
    cells = active.group_by(*groups, "cohort", "month").agg(
        customers=pl.len(), mrr=pl.col("mrr").sum().cast(MONEY)
    )
    last = active["month"].max()
    starts = cells.filter(pl.col("month") == pl.col("cohort")).select(
        *groups, "cohort", cohort_customers="customers", cohort_mrr="mrr"
    )
    grid = starts.with_columns(
        month=pl.date_ranges("cohort", pl.lit(last), interval="1mo")
    ).explode("month")
    months_since = (pl.col("month").dt.year() - pl.col("cohort").dt.year()) * 12 + (
        pl.col("month").dt.month().cast(pl.Int32) - pl.col("cohort").dt.month().cast(pl.Int32)
    )
    return (
        grid.join(cells, on=[*groups, "cohort", "month"], how="left")
        .with_columns(
            pl.col("customers").fill_null(0).cast(pl.Int64),
            pl.col("mrr").fill_null(0).cast(MONEY),
            months_since=months_since.cast(pl.Int64),
        )
        .with_columns(
            logo_retention=_ratio(pl.col("customers"), pl.col("cohort_customers")),
            mrr_retention=_ratio(pl.col("mrr"), pl.col("cohort_mrr")),
        )
        .select(
            *groups,
            "cohort",
            "month",
            "months_since",
            "cohort_customers",
            "cohort_mrr",
            "customers",
            "mrr",
            "logo_retention",
            "mrr_retention",
        )
        .sort([*groups, "cohort", "month"])
    )


def cohort_table(cohort_frame: pl.DataFrame, *, value: str = "logo_retention") -> pl.DataFrame:
    """Cohorts as a triangle: one row per cohort, one column per month since start ("0", "1"...)."""
    index = [*_groups(cohort_frame), "cohort", "cohort_customers"]
    return cohort_frame.pivot(on="months_since", index=index, values=value, sort_columns=True).sort(
        index
    )
