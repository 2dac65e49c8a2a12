"""Pictures: the altair MRR chart and the great-tables tables render what the frames hold."""

from __future__ import annotations

import datetime as dt

import polars as pl

from fincome_toolkit.bridge import movements
from fincome_toolkit.charts import cohort_heatmap, movements_table, mrr_chart, rates_table
from fincome_toolkit.metrics import mrr_by_customer
from fincome_toolkit.rates import cohorts, monthly_rates
from tests.mrr_builders import dataset, sub


def history() -> pl.DataFrame:
    subs = [
        sub(
            f"s{i}",
            f"2023-{1 + i % 12:02d}-01",
            f"2025-{1 + i % 6:02d}-01",
            str(100 + i),
            customer=f"c{i}",
        )
        for i in range(30)
    ]
    return mrr_by_customer(dataset(subs))


def test_the_mrr_chart_stacks_gains_up_losses_down_and_draws_mrr_as_a_line():
    monthly = movements(history())
    spec = mrr_chart(monthly).to_dict()
    bars, line = spec["layer"]
    assert bars["mark"]["type"] == "bar" and line["mark"]["type"] == "line"
    values = spec["datasets"][bars["data"]["name"]]
    churn = [row["amount"] for row in values if row["movement"] == "churn"]
    assert churn and all(amount <= 0 for amount in churn) and min(churn) < 0
    new = [row["amount"] for row in values if row["movement"] == "new"]
    assert max(new) > 0


def test_tables_cap_their_rows_and_show_the_values():
    monthly = movements(history())
    html = movements_table(monthly, max_rows=6).as_raw_html()
    last = monthly.sort("month").tail(6)
    assert html.count("<tr") <= 6 + 4  # header rows + six months
    assert f"{last['end_mrr'][-1]:,.2f}" in html
    assert "2023-02" not in html  # older months are left out
    rates_html = rates_table(monthly_rates(monthly), max_rows=3).as_raw_html()
    assert "NRR" in rates_html and "%" in rates_html


def test_the_cohort_heat_map_colours_its_cells():
    html = cohort_heatmap(cohorts(history()), max_cohorts=4, max_months=6).as_raw_html()
    assert html.count("background-color") >= 4
    assert "Cohorts: logo retention" in html
    mrr_html = cohort_heatmap(cohorts(history()), value="mrr_retention").as_raw_html()
    assert "MRR retention" in mrr_html


def test_a_chart_and_tables_escape_data_they_show():
    mrr = pl.DataFrame(
        {"customer_id": ["<b>x</b>"], "month": [dt.date(2025, 1, 1)], "mrr": [100]},
        schema_overrides={"mrr": pl.Decimal(18, 2)},
    )
    html = cohort_heatmap(cohorts(mrr)).as_raw_html()
    assert "<b>x</b>" not in html
