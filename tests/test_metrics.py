"""MRR per customer and its movements: Fincome's worked examples, month boundaries, options,
the dbt mrr-playbook reference and the exact bridge on random histories."""

from __future__ import annotations

import csv
import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fincome_toolkit.bridge import bridge_table, movement_detail, movements
from fincome_toolkit.errors import ConfigError, InputError
from fincome_toolkit.fx import load_fx_rates
from fincome_toolkit.metrics import MrrOptions, horizon, mrr_by_customer, mrr_lines
from tests.mrr_builders import by_month, dataset, inv, sub

PLAYBOOK = Path(__file__).parent / "data" / "mrr_playbook_subscription_periods.csv"
UNTIL_JUNE = MrrOptions(until=dt.date(2025, 6, 1))


def assert_bridge(monthly: pl.DataFrame) -> None:
    """end = start + new + reactivation + expansion − contraction − churn + fx, exactly, and
    each month starts where the previous one ended."""
    for row in monthly.iter_rows(named=True):
        moved = (
            row["start_mrr"]
            + row["new"]
            + row["reactivation"]
            + row["expansion"]
            - row["contraction"]
            - row["churn"]
            + row["fx"]
        )
        assert moved == row["end_mrr"], row
    groups = monthly.partition_by("currency") if "currency" in monthly.columns else [monthly]
    for group in groups:
        ends = group["end_mrr"].to_list()
        assert group["start_mrr"].to_list()[1:] == ends[:-1]


# --- Fincome's and peers' worked examples ---------------------------------------------------------


def test_a_subscription_from_15_march_counts_in_full_in_march():
    data = dataset([sub("s1", "2025-03-15", amount="100")])
    mrr = by_month(mrr_by_customer(data, options=UNTIL_JUNE))
    assert mrr["2025-03"] == Decimal("100.00")
    assert "2025-02" not in mrr and mrr["2025-06"] == Decimal("100.00")


def test_a_120_dollar_yearly_plan_is_10_dollars_mrr():
    data = dataset([sub("s1", "2025-01-01", "2026-01-01", "120", unit="year", currency="USD")])
    mrr = by_month(mrr_by_customer(data))
    assert set(mrr.values()) == {Decimal("10.00"), Decimal("0.00")}
    assert mrr["2025-12"] == Decimal("10.00") and mrr["2026-01"] == 0


def test_a_50_percent_lifetime_discount_on_10_dollars_is_5_dollars_and_gross_adds_it_back():
    discounted = sub("s1", "2025-01-01", "2025-04-01", "5", custom_properties='{"discount": 5}')
    data = dataset([discounted])
    assert by_month(mrr_by_customer(data))["2025-02"] == Decimal("5.00")
    gross = MrrOptions(discounts="gross")
    assert by_month(mrr_by_customer(data, options=gross))["2025-02"] == Decimal("10.00")


def test_moving_from_100_to_250_is_150_of_expansion():
    data = dataset(
        [sub("s1", "2025-01-01", "2025-03-01", "100"), sub("s2", "2025-03-01", None, "250")]
    )
    monthly = movements(mrr_by_customer(data, options=UNTIL_JUNE))
    march = monthly.filter(pl.col("month") == dt.date(2025, 3, 1)).row(0, named=True)
    assert march["expansion"] == Decimal("150.00") and march["expanded_customers"] == 1
    assert march["new"] == march["churn"] == 0


# --- month boundaries ---


@pytest.mark.parametrize(
    ("start", "end", "months", "prorated"),
    [
        ("2025-01-31", "2025-02-28", 1, False),  # 31 Jan → 28 Feb is one month
        ("2025-02-28", "2025-03-31", 1, False),  # a plan anchored on the 31st
        ("2024-01-31", "2024-02-29", 1, False),  # leap year
        ("2024-01-31", "2024-02-28", None, True),  # one day short in a leap year
        ("2025-01-15", "2025-04-15", 3, False),  # a quarter
        ("2024-02-29", "2025-02-28", 12, False),  # a year from a leap day
        ("2025-03-15", "2025-04-01", None, True),  # a prorated first period
    ],
)
def test_whole_months_follow_calendar_months_whatever_their_lengths(start, end, months, prorated):
    line = mrr_lines(dataset(invoices=[inv("i1", start, end, "300")]), source="invoices").row(
        0, named=True
    )
    assert line["prorated"] is prorated
    if months is not None:
        assert line["months"] == months
        assert line["monthly_amount"] == Decimal("300") / months


def test_a_line_inside_one_month_never_shows_and_activity_is_read_at_month_end():
    data = dataset(
        [
            sub("s1", "2025-03-03", "2025-03-20", customer="short"),
            sub("s2", "2025-01-15", "2025-03-15", customer="mid"),
        ]
    )
    mrr = mrr_by_customer(data)
    assert by_month(mrr, "short") == {}
    assert by_month(mrr, "mid") == {"2025-01": 100, "2025-02": 100, "2025-03": 0}
    lines = mrr_lines(data)
    assert lines.filter(pl.col("line_id") == "s1")["excluded"].item() == "no_month_end"


def test_quarterly_plans_round_to_cents_and_the_bridge_stays_exact():
    data = dataset(
        [
            sub("s1", "2025-01-01", "2025-07-01", "100", unit="month", count=3),
            sub("s2", "2025-02-01", "2025-05-01", "100", unit="month", count=3, customer="c2"),
        ]
    )
    mrr = mrr_by_customer(data)
    assert by_month(mrr)["2025-01"] == Decimal("33.33")
    assert_bridge(movements(mrr))


def test_open_ended_subscriptions_run_to_the_horizon_without_a_fake_churn():
    data = dataset([sub("s1", "2025-01-01"), sub("s2", "2025-01-01", "2025-05-01", customer="c2")])
    assert horizon(data) == dt.date(2025, 5, 1)
    monthly = movements(mrr_by_customer(data))
    assert monthly["month"].to_list()[-1] == dt.date(2025, 5, 1)
    last = monthly.row(-1, named=True)
    assert last["churn"] == Decimal("100.00") and last["end_mrr"] == Decimal("100.00")


def test_week_and_day_intervals_use_30_44_days_a_month():
    data = dataset(
        [
            sub("s1", "2025-01-01", None, "7", unit="week"),
            sub("s2", "2025-01-01", None, "1", unit="day", customer="c2"),
        ]
    )
    mrr = mrr_by_customer(data, options=MrrOptions(until=dt.date(2025, 2, 1)))
    assert by_month(mrr)["2025-01"] == Decimal("30.44")
    assert by_month(mrr, "c2")["2025-01"] == Decimal("30.44")


# --- options ---


def test_prorated_periods_count_by_days_round_or_are_excluded():
    data = dataset(invoices=[inv("i1", "2025-03-15", "2025-04-01", "50")])
    by_days = by_month(mrr_by_customer(data, source="invoices"))
    assert by_days["2025-03"] == Decimal("89.53")  # 50 × 30.44 / 17
    rounded = by_month(
        mrr_by_customer(data, source="invoices", options=MrrOptions(prorated="round"))
    )
    assert rounded["2025-03"] == Decimal("50.00")
    excluded = MrrOptions(prorated="exclude")
    assert by_month(mrr_by_customer(data, source="invoices", options=excluded)) == {}
    lines = mrr_lines(data, source="invoices", options=excluded)
    assert lines["excluded"].to_list() == ["prorated_excluded"]


def test_one_off_lines_are_excluded_unless_spread_and_tax_never_counts():
    data = dataset(
        invoices=[
            inv("i1", "2025-01-01", "2025-02-01", "100", tax_amount=Decimal("20")),
            inv("i2", "2025-01-01", "2025-04-01", "300", type="one_off"),
        ]
    )
    assert by_month(mrr_by_customer(data, source="invoices"))["2025-01"] == Decimal("100.00")
    spread = MrrOptions(one_off="spread")
    assert by_month(mrr_by_customer(data, source="invoices", options=spread))["2025-01"] == 200


def test_open_invoices_on_cancelled_subscriptions_can_be_excluded():
    cancelled = sub("s1", "2025-01-01", "2025-03-01", status="cancelled", cancelled_at="2025-02-10")
    data = dataset(
        [cancelled],
        [
            inv("i1", "2025-01-01", "2025-02-01"),
            inv("i2", "2025-02-01", "2025-03-01", status="open"),
        ],
    )
    counted = by_month(mrr_by_customer(data, source="invoices"))
    assert counted["2025-02"] == 100
    options = MrrOptions(unpaid_on_cancelled="exclude")
    assert by_month(mrr_by_customer(data, source="invoices", options=options))["2025-02"] == 0


def test_churn_can_be_recognised_at_cancellation():
    data = dataset([sub("s1", "2025-01-01", "2025-06-01", cancelled_at="2025-03-10")])
    at_end = by_month(mrr_by_customer(data))
    assert at_end["2025-05"] == 100 and at_end["2025-06"] == 0
    at_cancel = by_month(mrr_by_customer(data, options=MrrOptions(churn_date="cancelled_at")))
    assert at_cancel["2025-02"] == 100 and at_cancel["2025-03"] == 0 and "2025-04" not in at_cancel


def test_quantity_multiplies_only_when_asked():
    data = dataset([sub("s1", "2025-01-01", "2025-03-01", "10", quantity=3)])
    assert by_month(mrr_by_customer(data))["2025-01"] == 10
    times = MrrOptions(multiply_by_quantity=True)
    assert by_month(mrr_by_customer(data, options=times))["2025-01"] == 30


def test_lines_that_cannot_count_say_why_and_bad_options_are_refused():
    data = dataset(invoices=[inv("i1", None, None), inv("i2", "2025-02-01", "2025-01-01")])
    reasons = mrr_lines(data, source="invoices")["excluded"].to_list()
    assert reasons == ["missing_period", "period_not_increasing"]
    with pytest.raises(ConfigError, match="prorated"):
        MrrOptions(prorated="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="source"):
        mrr_by_customer(data, source="ledger")  # type: ignore[arg-type]


# --- movements ---


def test_every_category_appears_with_its_counts():
    data = dataset(
        [
            sub("a1", "2025-01-01", "2025-03-01", "100", customer="a"),  # churns in March
            sub("a2", "2025-05-01", "2025-07-01", "100", customer="a"),  # reactivates in May
            sub("b1", "2025-01-01", "2025-04-01", "100", customer="b"),
            sub("b2", "2025-04-01", "2025-07-01", "60", customer="b"),  # contraction in April
        ]
    )
    detail = movement_detail(mrr_by_customer(data))
    categories = {
        (r["customer_id"], r["month"].month): r["category"] for r in detail.iter_rows(named=True)
    }
    assert categories[("a", 1)] == "new" and categories[("a", 3)] == "churn"
    assert categories[("a", 5)] == "reactivation" and categories[("b", 4)] == "contraction"
    monthly = movements(mrr_by_customer(data))
    may = monthly.filter(pl.col("month") == dt.date(2025, 5, 1)).row(0, named=True)
    assert (
        may["reactivation"] == 100 and may["reactivated_customers"] == 1 and may["customers"] == 2
    )
    assert_bridge(monthly)


def test_several_currencies_have_their_own_bridge_and_the_table_refuses_to_add_them():
    data = dataset(
        [
            sub("s1", "2025-01-01", "2025-03-01"),
            sub("s2", "2025-01-01", "2025-03-01", currency="USD", customer="c2"),
        ]
    )
    monthly = movements(mrr_by_customer(data))
    assert set(monthly["currency"]) == {"EUR", "USD"}
    assert_bridge(monthly)
    with pytest.raises(InputError, match="several currencies"):
        bridge_table(monthly)


def write_rates(tmp_path: Path, rows: list[str]) -> Path:
    path = tmp_path / "rates.csv"
    path.write_text("date,currency,rate\n" + "\n".join(rows) + "\n")
    return path


def test_conversion_shows_the_fx_effect_on_its_own_line(tmp_path):
    rates = load_fx_rates(write_rates(tmp_path, ["2025-01-31,USD,1.25", "2025-02-28,USD,1.00"]))
    data = dataset(
        [
            sub("s1", "2025-01-01", "2025-04-01", "100"),
            sub("s2", "2025-01-01", "2025-04-01", "100", currency="USD", customer="c2"),
        ]
    )
    mrr = mrr_by_customer(data, currency="EUR", rates=rates)
    assert by_month(mrr, "c2")["2025-01"] == Decimal("80.00")  # 100 USD ÷ 1.25
    monthly = movements(mrr)
    february = monthly.filter(pl.col("month") == dt.date(2025, 2, 1)).row(0, named=True)
    assert february["fx"] == Decimal("20.00") and february["expansion"] == 0
    assert_bridge(monthly)
    folded = movements(mrr, fx="fold")
    assert folded.filter(pl.col("month") == dt.date(2025, 2, 1))["expansion"].item() == 20
    assert bridge_table(folded).columns == [
        "month",
        "mrr",
        "customers",
        "new",
        "reactivation",
        "expansion",
        "contraction",
        "churn",
    ]


def test_missing_rates_and_unreadable_rate_files_are_explained(tmp_path):
    data = dataset([sub("s1", "2025-01-01", "2025-03-01", currency="USD")])
    rates = load_fx_rates(write_rates(tmp_path, ["2025-02-28,USD,1.1"]))
    with pytest.raises(InputError, match="USD on or before 2025-01-31"):
        mrr_by_customer(data, currency="EUR", rates=rates)
    with pytest.raises(InputError, match="line 3"):
        load_fx_rates(write_rates(tmp_path, ["2025-01-31,USD,1.1", "31/01/2025,GBP,abc"]))


def test_invoices_convert_at_their_issue_date(tmp_path):
    rates = load_fx_rates(write_rates(tmp_path, ["2025-01-01,USD,2", "2025-01-20,USD,1"]))
    data = dataset(invoices=[inv("i1", "2025-01-10", "2025-04-10", "300", currency="USD")])
    mrr = mrr_by_customer(data, source="invoices", currency="EUR", rates=rates)
    assert set(by_month(mrr).values()) - {0} == {Decimal("50.00")}  # rate of 10 January: 2


# --- the dbt mrr-playbook reference ---
# Mapping of that project's change categories: new → new, churn → churn (the MRR lost),
# reactivation → reactivation, upgrade → expansion, downgrade → contraction.


def playbook_rows() -> list[dict]:
    with PLAYBOOK.open() as handle:
        return [
            {
                "customer_id": row["customer_id"],
                "start": dt.date.fromisoformat(row["start_date"]),
                "end": dt.date.fromisoformat(row["end_date"]),
                "amount": Decimal(row["monthly_amount"]),
            }
            for row in csv.DictReader(handle)
        ]


def add_month(month: dt.date, count: int = 1) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def dbt_playbook_movements(rows: list[dict]) -> dict[tuple[dt.date, str], Decimal]:
    """The playbook's SQL, step by step in plain Python: customer_revenue_by_month (a month spine
    from 2018-01 joined to the periods with start <= month < end), customer_churn_month (a zero row
    the month after the last active month), mrr (lag by customer, then the case expression)."""
    spine_start = dt.date(2018, 1, 1)
    totals: dict[tuple[dt.date, str], Decimal] = defaultdict(Decimal)
    for customer in sorted({row["customer_id"] for row in rows}):
        periods = [row for row in rows if row["customer_id"] == customer]
        first = min(p["start"] for p in periods).replace(day=1)
        last = max(p["end"] for p in periods).replace(day=1)
        months, month = [], max(first, spine_start)
        while month < last:
            amounts = [p["amount"] for p in periods if p["start"] <= month < p["end"]]
            assert len(amounts) <= 1, "the playbook's join assumes no overlapping periods"
            months.append((month, amounts[0] if amounts else Decimal(0)))
            month = add_month(month)
        active = [m for m, amount in months if amount > 0]
        if not active:
            continue
        months.append((add_month(max(active)), Decimal(0)))  # customer_churn_month
        previous_active, previous_mrr = False, Decimal(0)
        for month, mrr in months:
            is_active, change = mrr > 0, mrr - previous_mrr
            if is_active and month == min(active):
                category = "new"
            elif not is_active and previous_active:
                category = "churn"
            elif is_active and not previous_active:
                category = "reactivation"
            elif change > 0:
                category = "expansion"
            elif change < 0:
                category = "contraction"
            else:
                category = None
            if category:
                totals[(month, category)] += abs(change)
            totals[(month, "mrr")] += mrr
            previous_active, previous_mrr = is_active, mrr
    return totals


def test_movements_agree_with_the_dbt_mrr_playbook_from_2018_on():
    rows = playbook_rows()
    data = dataset(
        [
            sub(
                f"p{i}",
                r["start"].isoformat(),
                r["end"].isoformat(),
                str(r["amount"]),
                customer=r["customer_id"],
                currency="USD",
            )
            for i, r in enumerate(rows)
        ]
    )
    monthly = movements(mrr_by_customer(data)).filter(pl.col("month") >= dt.date(2018, 1, 1))
    expected = dbt_playbook_movements(rows)
    assert monthly.height == len({month for month, _ in expected})
    columns = {
        "new": "new",
        "churn": "churn",
        "reactivation": "reactivation",
        "expansion": "expansion",
        "contraction": "contraction",
        "mrr": "end_mrr",
    }
    for row in monthly.iter_rows(named=True):
        for name, column in columns.items():
            assert row[column] == expected.get((row["month"], name), 0), (row["month"], name)
    assert_bridge(monthly)


# --- the bridge holds for any history ---

DAYS = st.integers(min_value=0, max_value=900)
PLANS = st.sampled_from([("month", 1), ("month", 3), ("year", 1), ("week", 2), ("day", 10)])


@st.composite
def histories(draw):
    rows = []
    for index in range(draw(st.integers(min_value=1, max_value=12))):
        start = dt.date(2023, 1, 1) + dt.timedelta(days=draw(DAYS))
        length = draw(st.one_of(st.none(), st.integers(min_value=1, max_value=500)))
        end = None if length is None else (start + dt.timedelta(days=length)).isoformat()
        unit, count = draw(PLANS)
        amount = draw(st.decimals(min_value=1, max_value=10_000, places=2))
        customer = draw(st.sampled_from(["a", "b", "c", "d"]))
        currency = draw(st.sampled_from(["EUR", "EUR", "USD"]))
        rows.append(
            sub(
                f"s{index}",
                start.isoformat(),
                end,
                str(amount),
                customer=customer,
                unit=unit,
                count=count,
                currency=currency,
            )
        )
    return rows


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_the_bridge_holds_exactly_for_random_histories(rows):
    mrr = mrr_by_customer(dataset(rows))
    monthly = movements(mrr)
    assert_bridge(monthly)
    active = (
        mrr.filter(pl.col("mrr") > 0)
        .group_by("currency", "month")
        .agg(total=pl.col("mrr").sum(), customers=pl.len())
    )
    joined = monthly.join(active, on=["currency", "month"], how="left").with_columns(
        pl.col("total").fill_null(0), pl.col("customers_right").fill_null(0)
    )
    assert (joined["end_mrr"] == joined["total"]).all()
    assert (joined["customers"] == joined["customers_right"]).all()


def test_a_future_dated_invoice_does_not_stretch_the_horizon():
    """One invoice dated years ahead is a defect (INV-008), not the edge of the history."""
    data = dataset(
        invoices=[
            inv("i1", "2025-03-01", "2025-04-01"),
            inv("i2", "2099-01-01", "2099-02-01", customer="c2", subscription="s2"),
        ]
    )
    assert horizon(data) == dt.date(2025, 3, 1)
