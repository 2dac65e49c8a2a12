"""Reconciliation: invoice vs subscription MRR with causes, finance's file, Fincome's read-back."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

from fincome_toolkit.errors import InputError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.metrics import MrrOptions, mrr_by_customer
from fincome_toolkit.reconcile import (
    SOURCE_COLUMNS,
    Tolerance,
    load_finance_file,
    reconcile_all,
    reconcile_finance,
    reconcile_fincome,
    reconcile_sources,
)
from tests.mrr_builders import dataset, frame, inv, sub

UNTIL = MrrOptions(until=dt.date(2025, 4, 1))


def causes(data: Dataset, options: MrrOptions = UNTIL) -> dict[tuple[str, str], str]:
    found = reconcile_sources(data, options=options)
    assert tuple(found.columns) == SOURCE_COLUMNS
    return {
        (r["customer_id"], f"{r['month']:%Y-%m}"): r["cause"] for r in found.iter_rows(named=True)
    }


def monthly_invoices(
    subscription: str, months: list[int], amount: str = "100", **extra
) -> list[dict]:
    return [
        inv(
            f"{subscription}-{m}",
            f"2025-{m:02d}-01",
            f"2025-{m + 1:02d}-01",
            amount,
            subscription=subscription,
            **extra,
        )
        for m in months
    ]


def test_sources_agree_when_every_month_is_invoiced_at_the_price():
    data = dataset([sub("s1", "2025-01-01")], monthly_invoices("s1", [1, 2, 3, 4]))
    assert reconcile_sources(data, options=UNTIL).is_empty()


def test_a_gap_a_missing_invoice_and_a_price_mismatch_are_told_apart():
    invoices = [*monthly_invoices("s1", [1, 3]), inv("s1-4", "2025-04-01", "2025-05-01", "90")]
    data = dataset([sub("s1", "2025-01-01"), sub("s2", "2025-01-01", customer="c2")], invoices)
    found = causes(data)
    assert found[("c1", "2025-02")] == "gap"
    assert found[("c1", "2025-04")] == "price_mismatch"
    assert found[("c2", "2025-01")] == "missing_invoice"
    row = (
        reconcile_sources(data, options=UNTIL)
        .filter(pl.col("cause") == "price_mismatch")
        .row(0, named=True)
    )
    assert row["difference"] == Decimal("-10.00") and row["invoice_ids"] == "s1-4"
    assert row["subscription_ids"] == "s1"


def test_overlaps_unlinked_invoices_currency_and_prorated_periods_are_named():
    invoices = [
        *monthly_invoices("s1", [1, 2, 3, 4]),
        inv("dup", "2025-02-01", "2025-03-01", subscription="s1"),  # overlaps February
        inv("loose", "2025-03-01", "2025-04-01", "50", subscription=None),  # no subscription
        *monthly_invoices("s2", [1, 2, 3, 4], customer="c2", currency="USD"),
        inv("pro", "2025-01-15", "2025-02-01", "50", subscription="s3", customer="c3"),
        *monthly_invoices("s3", [2, 3, 4], customer="c3"),
    ]
    subs = [
        sub("s1", "2025-01-01"),
        sub("s2", "2025-01-01", customer="c2"),
        sub("s3", "2025-01-15", customer="c3"),
    ]
    found = causes(dataset(subs, invoices))
    assert found[("c1", "2025-02")] == "overlap"
    assert found[("c1", "2025-03")] == "unlinked_invoice"
    assert found[("c2", "2025-01")] == "currency_mismatch"
    assert found[("c3", "2025-01")] == "prorated_period"


def test_an_invoice_outside_its_subscription_and_one_of_another_customer():
    invoices = [
        *monthly_invoices("s1", [1, 2]),
        inv("late", "2025-03-01", "2025-04-01", subscription="s1"),
        inv("other", "2025-01-01", "2025-02-01", subscription="s1", customer="c2"),
    ]
    found = causes(dataset([sub("s1", "2025-01-01", "2025-03-01")], invoices))
    assert found[("c1", "2025-03")] == "invoice_outside_subscription"
    assert found[("c2", "2025-01")] == "customer_mismatch"


# --- finance's file ---


def test_finance_arr_file_with_messy_amounts_is_compared_total_first_then_movements(tmp_path):
    path = tmp_path / "finance.csv"
    path.write_text('month;ARR;new\n2025-01;"1 200,00";100\n02/2025;2 400,00;0\n2025-03;2500;0\n')
    with pytest.raises(InputError, match="line 3"):
        load_finance_file(path)
    path.write_text('month;ARR;new\n2025-01;"1 200,00";100\n2025-02;2 400,00;0\n2025-03;1230;0\n')
    finance, measure = load_finance_file(path)
    assert measure == "arr" and finance["amount"].to_list() == [1200, 2400, 1230]
    data = dataset([sub("s1", "2025-01-01", "2025-04-01")])
    result = reconcile_finance(
        mrr_by_customer(data), finance, measure=measure, tolerance=Tolerance.parse("50")
    )
    assert result["level"].to_list() == ["total"] * 3 + ["movement"] * 3
    totals = result.filter(pl.col("level") == "total")
    assert totals["within_tolerance"].to_list() == [True, False, True]
    assert totals["difference"].to_list() == [0, -1200, -30]
    new = result.filter(pl.col("measure") == "new")
    assert new["toolkit"].to_list() == [1200, 0, 0]  # 12 × MRR movements for an ARR file


def test_finance_per_customer_and_relative_tolerance(tmp_path):
    path = tmp_path / "finance.csv"
    path.write_text("month,customer_id,mrr\n2025-01,c1,101\n2025-01,c2,50\n")
    finance, measure = load_finance_file(path)
    data = dataset(
        [
            sub("s1", "2025-01-01", "2025-02-01"),
            sub("s2", "2025-01-01", "2025-02-01", "50", customer="c2"),
        ]
    )
    result = reconcile_finance(
        mrr_by_customer(data), finance, measure=measure, tolerance=Tolerance.parse("0.5%")
    )
    customers = result.filter(pl.col("level") == "customer").sort("customer_id")
    assert customers["within_tolerance"].to_list() == [False, True]
    assert customers["relative_difference"][0] == pytest.approx(-1 / 101)


def test_an_unusable_finance_file_says_what_columns_it_needs(tmp_path):
    path = tmp_path / "finance.csv"
    path.write_text("period_end,value\n2025-01,1\n")
    with pytest.raises(InputError, match="month column and an amount"):
        load_finance_file(path)


# --- what Fincome holds ---


def test_fincome_records_missing_extra_and_different_field_by_field():
    ours = Dataset(
        customers=frame(
            "customers",
            [
                {"id": "c1", "name": "Acme", "custom_properties": '{"a": 1, "b": 2}'},
                {"id": "c2", "name": "Beta"},
            ],
        ),
        subscriptions=frame("subscriptions", [sub("s1", "2025-01-01", amount="100")]),
    )
    theirs = Dataset(
        customers=frame(
            "customers",
            [
                {"id": "c1", "name": "ACME", "custom_properties": '{"b": 2, "a": 1}'},
                {"id": "c9", "name": "Ghost"},
            ],
        ),
        subscriptions=frame("subscriptions", [sub("s1", "2025-01-01", amount="100.00")]),
    )
    found = reconcile_fincome(ours, theirs)
    rows = {(r["entity"], r["id"], r["status"], r["field"]) for r in found.iter_rows(named=True)}
    assert rows == {
        ("customers", "c1", "different", "name"),
        ("customers", "c2", "missing", None),
        ("customers", "c9", "extra", None),
    }
    name = found.filter(pl.col("field") == "name").row(0, named=True)
    assert (name["source_value"], name["fincome_value"]) == ("Acme", "ACME")


def test_reconcile_against_the_sandbox_over_http():
    sandbox_module = pytest.importorskip("fincome_toolkit.sandbox")
    from fincome_toolkit.client import FincomeClient, pull
    from fincome_toolkit.contract import build_payloads

    data = Dataset(
        customers=frame(
            "customers",
            [{"id": "c1", "name": "Acme", "country": "FR"}, {"id": "c2", "name": "Beta"}],
        ),
        subscriptions=frame("subscriptions", [sub("s1", "2025-01-01", "2025-03-01")]),
        invoices=frame("invoices", monthly_invoices("s1", [1, 2])),
    )

    async def send_and_read(base_url: str, key: str, sent: Dataset) -> Dataset:
        settings = running.contract()
        async with FincomeClient(settings, api_key=key) as client:
            for entity, rows in sent.frames().items():
                for payload in build_payloads(entity, rows):
                    answer = await client.create(entity, payload)
                    assert answer.status_code in (200, 201, 202), answer.text
            return await pull(client)

    with sandbox_module.sandbox() as running:
        uploaded = Dataset(
            customers=data.customers.filter(pl.col("id") == "c1"),
            subscriptions=data.subscriptions,
            invoices=data.invoices,
        )
        held = asyncio.run(send_and_read(running.base_url, running.api_key, uploaded))
    findings = reconcile_all(data, fincome=held).fincome
    assert findings.select("entity", "id", "status").rows() == [("customers", "c2", "missing")]


# --- the sample generator: clean data agrees, dirty data is explained by its manifest ---


def as_of_month(generated) -> MrrOptions:
    """The last month the generated billing is complete for: the month before its as-of date."""
    last_day = generated.as_of - dt.timedelta(days=1)
    return MrrOptions(until=last_day.replace(day=1))


def test_clean_generated_data_agrees_exactly_between_the_two_sources():
    sample = pytest.importorskip("fincome_toolkit.sample")
    generated = sample.generate(customers=150, seed=7, defects=False)
    assert reconcile_sources(generated.dataset).is_empty()
    assert reconcile_sources(generated.dataset, options=as_of_month(generated)).is_empty()


def customers_touched(data: Dataset, manifest: pl.DataFrame) -> set[str]:
    """Customers a planted defect touches: directly, through a subscription, or an invoice (its
    own customer and its subscription's)."""
    ids = set(manifest["id"].drop_nulls().to_list())
    subs, invoices = data.subscriptions, data.invoices
    touched = set(data.customers.filter(pl.col("id").is_in(ids))["id"].to_list())
    touched |= set(subs.filter(pl.col("id").is_in(ids))["customer_id"].drop_nulls().to_list())
    hit = invoices.filter(pl.col("id").is_in(ids))
    touched |= set(hit["customer_id"].drop_nulls().to_list())
    owners = subs.filter(pl.col("id").is_in(hit["subscription_id"].drop_nulls().implode()))
    return touched | set(owners["customer_id"].drop_nulls().to_list())


def test_every_disagreement_on_dirty_data_is_explained_by_a_planted_defect():
    """With the as-of month given (a future-dated invoice would otherwise stretch the horizon
    for everyone), each customer-month that differs belongs to a customer a defect touches."""
    sample = pytest.importorskip("fincome_toolkit.sample")
    generated = sample.generate(customers=150, seed=7, defects=True)
    found = reconcile_sources(generated.dataset, options=as_of_month(generated))
    assert not found.is_empty()
    touched = customers_touched(generated.dataset, generated.manifest)
    unexplained = found.filter(~pl.col("customer_id").is_in(sorted(touched)))
    assert unexplained.is_empty(), unexplained
    assert "unexplained" not in set(found["cause"])
