"""Rates, trailing-12 retention and cohorts, checked on Fincome's published worked examples."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from fincome_toolkit.bridge import movements
from fincome_toolkit.frames import MONEY
from fincome_toolkit.rates import cohort_table, cohorts, monthly_rates, trailing_rates

JAN, FEB = dt.date(2025, 1, 1), dt.date(2025, 2, 1)


def mrr_frame(rows: list[tuple[str, dt.date, str]]) -> pl.DataFrame:
    """An MRR frame (customer_id, month, mrr) from (customer, month, amount) triples."""
    return pl.DataFrame(
        [(customer, month, Decimal(amount)) for customer, month, amount in rows],
        schema={"customer_id": pl.String, "month": pl.Date, "mrr": MONEY},
        orient="row",
    )


def february_rates(rows: list[tuple[str, dt.date, str]]) -> dict:
    rates = monthly_rates(movements(mrr_frame(rows), until=FEB))
    return rates.filter(pl.col("month") == FEB).row(0, named=True)


def test_churn_of_2000_on_50000_is_4_percent_and_6_with_1000_of_contraction():
    base = [("big", JAN, "48000"), ("small", JAN, "2000")]
    churn_only = february_rates([*base, ("big", FEB, "48000")])
    assert churn_only["gross_mrr_churn"] == pytest.approx(0.04)
    with_contraction = february_rates([*base, ("big", FEB, "47000")])
    assert with_contraction["gross_mrr_churn"] == pytest.approx(0.06)
    assert with_contraction["net_mrr_churn"] == pytest.approx(0.06)


def test_losing_5_of_100_customers_is_5_percent_logo_churn():
    rows = [(f"c{i}", JAN, "10") for i in range(100)] + [(f"c{i}", FEB, "10") for i in range(95)]
    rates = february_rates(rows)
    assert rates["logo_churn"] == pytest.approx(0.05)
    assert rates["customers"] == 95 and rates["arpa"] == Decimal("10.00")
    assert rates["arr"] == Decimal("11400.00")


def test_nrr_of_the_fincome_example_is_88_5_percent():
    rows = [
        ("churned", JAN, "10000"),
        ("smaller", JAN, "1833"),
        ("smaller", FEB, "1000"),  # 833 of contraction
        ("bigger", JAN, "5000"),
        ("bigger", FEB, "6250"),  # 1,250 of expansion
        ("steady", JAN, "66500"),
        ("steady", FEB, "66500"),
    ]
    rates = february_rates(rows)
    assert rates["nrr"] == pytest.approx(0.885, abs=5e-4)
    assert rates["grr"] == pytest.approx((83333 - 833 - 10000) / 83333)
    assert rates["net_mrr_churn"] == pytest.approx((10000 + 833 - 1250) / 83333)


def test_rates_without_a_base_are_null_not_a_division_error():
    rates = monthly_rates(movements(mrr_frame([("a", JAN, "10")]), until=JAN))
    assert rates["logo_churn"].to_list() == [None] and rates["nrr"].to_list() == [None]


def test_trailing_12_months_follow_the_customers_active_a_year_earlier_and_cap_grr():
    year_later = dt.date(2026, 1, 1)
    rows = [
        ("grows", JAN, "100"),
        ("grows", year_later, "150"),
        ("leaves", JAN, "100"),
        ("arrives", year_later, "500"),  # not in the base: does not count
    ]
    trailing = (
        trailing_rates(mrr_frame(rows)).filter(pl.col("month") == year_later).row(0, named=True)
    )
    assert trailing["base_customers"] == 2 and trailing["base_mrr"] == 200
    assert trailing["nrr"] == pytest.approx(0.75)
    assert trailing["grr"] == pytest.approx(0.5)
    assert trailing["logo_retention"] == pytest.approx(0.5)


def test_cohorts_by_logo_and_by_mrr_start_at_the_first_month_with_mrr():
    march = dt.date(2025, 3, 1)
    rows = [
        ("a", JAN, "100"),
        ("a", FEB, "100"),
        ("a", march, "200"),
        ("b", JAN, "100"),
        ("b", FEB, "100"),
        ("c", FEB, "50"),
    ]
    table = cohorts(mrr_frame(rows))
    january = table.filter(pl.col("cohort") == JAN).sort("month")
    assert january["logo_retention"].to_list() == [1.0, 1.0, 0.5]
    assert january["mrr_retention"].to_list() == [1.0, 1.0, 1.0]
    assert january["months_since"].to_list() == [0, 1, 2]
    triangle = cohort_table(table)
    assert triangle.columns == ["cohort", "cohort_customers", "0", "1", "2"]
    assert triangle.filter(pl.col("cohort") == FEB)["2"].to_list() == [None]
