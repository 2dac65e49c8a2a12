"""Pictures of the metrics: an altair MRR chart and great-tables tables.

Inputs are the frames of `movements.movements`, `rates.monthly_rates` and `rates.cohorts`.
Tables show the last `max_rows` months (or cohorts) so they render fast on long histories; the
frames themselves hold everything. Money is turned into floats for display only.
"""

from __future__ import annotations

import altair as alt
import polars as pl
from great_tables import GT

POSITIVE = ("new", "reactivation", "expansion")
NEGATIVE = ("contraction", "churn")
COLOURS = {
    "new": "#2e7d32",
    "reactivation": "#66bb6a",
    "expansion": "#a5d6a7",
    "contraction": "#ffab91",
    "churn": "#d84315",
    "fx": "#90a4ae",
}


def _one_currency(frame: pl.DataFrame, currency: str | None) -> pl.DataFrame:
    """The rows of one currency (the first one when not chosen) of a per-currency frame."""
    if "currency" not in frame.columns:
        return frame
    chosen = currency or (frame["currency"].drop_nulls().sort().first() if frame.height else None)
    return frame.filter(pl.col("currency") == chosen).drop("currency")


def _as_floats(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))


def mrr_chart(
    monthly: pl.DataFrame, *, currency: str | None = None, max_months: int | None = 60
) -> alt.LayerChart:
    """MRR over time: stacked bars for the movements (gains up, losses down) and a line for MRR."""
    frame = _as_floats(_one_currency(monthly, currency)).sort("month")
    if max_months:
        frame = frame.tail(max_months)
    kinds = [*POSITIVE, *NEGATIVE] + (["fx"] if frame["fx"].abs().sum() > 0 else [])
    bars = frame.select(
        "month",
        *[pl.col(name) for name in POSITIVE],
        *[-pl.col(name) for name in NEGATIVE],
        *(["fx"] if "fx" in kinds else []),
    ).unpivot(index="month", variable_name="movement", value_name="amount")
    colour = alt.Color(
        "movement:N",
        scale=alt.Scale(domain=kinds, range=[COLOURS[kind] for kind in kinds]),
        sort=kinds,
        title="movement",
    )
    bar_layer = (
        alt.Chart(bars)
        .mark_bar()
        .encode(
            x=alt.X("yearmonth(month):T", title="month"),
            y=alt.Y("sum(amount):Q", title="movements"),
            color=colour,
            order=alt.Order("movement:N"),
            tooltip=["yearmonth(month):T", "movement:N", alt.Tooltip("amount:Q", format=",.2f")],
        )
    )
    line_layer = (
        alt.Chart(frame)
        .mark_line(point=True, color="#1a237e")
        .encode(
            x="yearmonth(month):T",
            y=alt.Y("end_mrr:Q", title="MRR"),
            tooltip=["yearmonth(month):T", alt.Tooltip("end_mrr:Q", format=",.2f", title="MRR")],
        )
    )
    return (
        alt.layer(bar_layer, line_layer)
        .resolve_scale(y="independent")
        .properties(title="MRR and its movements", width=640, height=320)
    )


def movements_table(
    monthly: pl.DataFrame, *, currency: str | None = None, max_rows: int = 24
) -> GT:
    """The MRR bridge month by month (last `max_rows` months)."""
    frame = _as_floats(_one_currency(monthly, currency)).sort("month").tail(max_rows)
    columns = ["start_mrr", *POSITIVE, *NEGATIVE, "fx", "end_mrr"]
    shown = frame.select(
        pl.col("month").dt.strftime("%Y-%m"), *columns, "customers", "churned_customers"
    )
    if not shown["fx"].abs().sum():
        shown = shown.drop("fx")
        columns.remove("fx")
    return (
        GT(shown, rowname_col="month")
        .tab_header(title="MRR bridge", subtitle=_subtitle(monthly, currency, max_rows))
        .fmt_number(columns=columns, decimals=2)
        .cols_label(start_mrr="start", end_mrr="end", churned_customers="churned")
        .tab_spanner(label="movements", columns=[*POSITIVE, *NEGATIVE])
    )


def rates_table(rates: pl.DataFrame, *, currency: str | None = None, max_rows: int = 24) -> GT:
    """Monthly rates (ARR, ARPA, churn, NRR, GRR) for the last `max_rows` months."""
    frame = _as_floats(_one_currency(rates, currency)).sort("month").tail(max_rows)
    percents = ["logo_churn", "gross_mrr_churn", "net_mrr_churn", "nrr", "grr"]
    shown = frame.with_columns(pl.col("month").dt.strftime("%Y-%m"))
    return (
        GT(shown, rowname_col="month")
        .tab_header(title="SaaS rates", subtitle=_subtitle(rates, currency, max_rows))
        .fmt_number(columns=["mrr", "arr", "arpa"], decimals=2)
        .fmt_percent(columns=percents, decimals=1)
        .sub_missing(missing_text="–")
        .cols_label(
            logo_churn="logo churn",
            gross_mrr_churn="gross MRR churn",
            net_mrr_churn="net MRR churn",
            nrr="NRR",
            grr="GRR",
            arr="ARR",
            arpa="ARPA",
            mrr="MRR",
        )
    )


def cohort_heatmap(
    cohort_frame: pl.DataFrame,
    *,
    value: str = "logo_retention",
    currency: str | None = None,
    max_cohorts: int = 24,
    max_months: int = 24,
) -> GT:
    """A cohort triangle coloured like a heat map (`value`: logo_retention or mrr_retention)."""
    frame = _one_currency(cohort_frame, currency)
    recent = frame["cohort"].unique().sort().tail(max_cohorts)
    frame = frame.filter(
        pl.col("cohort").is_in(recent.implode()) & (pl.col("months_since") < max_months)
    )
    table = frame.pivot(
        on="months_since", index=["cohort", "cohort_customers"], values=value, sort_columns=True
    ).sort("cohort")
    table = table.with_columns(pl.col("cohort").dt.strftime("%Y-%m"))
    months = [name for name in table.columns if name not in ("cohort", "cohort_customers")]
    title = "logo retention" if value == "logo_retention" else "MRR retention"
    gt = (
        GT(table, rowname_col="cohort")
        .tab_header(title=f"Cohorts: {title}", subtitle="months since the first MRR")
        .cols_label(cohort_customers="customers")
        .sub_missing(missing_text="")
    )
    if not months:
        return gt
    highest = max(1.0, float(frame[value].max() or 0))  # net MRR retention can exceed 100 %
    return gt.fmt_percent(columns=months, decimals=0).data_color(
        columns=months, palette=["#fbe9e7", "#2e7d32"], domain=[0, highest], na_color="#ffffff"
    )


def _subtitle(frame: pl.DataFrame, currency: str | None, max_rows: int) -> str:
    chosen = currency
    if chosen is None and "currency" in frame.columns and frame.height:
        chosen = frame["currency"].drop_nulls().sort().first()
    prefix = f"{chosen} · " if chosen else ""
    return f"{prefix}last {max_rows} months at most"
