"""The `metrics` and `reconcile` commands on real files in a temporary folder."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from fincome_toolkit.cli import main

CUSTOMERS = "id,name\nc1,Acme\nc2,Beta\n"
SUBSCRIPTIONS = (
    "id,customer_id,status,start_date,end_date,interval_unit,interval_count,amount_excluding_tax,currency\n"
    "s1,c1,active,2025-01-15,2025-06-01,month,1,100.00,{c1}\n"
    "s2,c2,active,2025-02-01,2025-05-01,month,3,300.00,{c2}\n"
)
INVOICES = (
    "id,customer_id,subscription_id,issue_date,status,type,period_start,period_end,amount_excluding_tax,tax_amount,currency\n"
    "i1,c1,s1,2025-01-15,paid,subscription,2025-01-15,2025-02-15,100,20,EUR\n"
    "i2,c1,s1,2025-02-15,paid,subscription,2025-02-15,2025-04-15,200,40,EUR\n"
    "i3,c2,s2,2025-02-01,paid,subscription,2025-02-01,2025-05-01,300,60,EUR\n"
    "i4,c1,s1,2025-04-15,paid,subscription,2025-04-15,2025-06-15,200,40,EUR\n"
)


def export(tmp_path: Path, c2: str = "EUR") -> Path:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "customers.csv").write_text(CUSTOMERS)
    (folder / "subscriptions.csv").write_text(SUBSCRIPTIONS.format(c1="EUR", c2=c2))
    (folder / "invoices.csv").write_text(INVOICES)
    return folder


def test_metrics_writes_the_bridge_csv_with_exactly_the_agreed_columns(tmp_path):
    folder = export(tmp_path)
    out, detail = tmp_path / "bridge.csv", tmp_path / "detail.csv"
    args = [
        "metrics",
        str(folder),
        "--until",
        "2025-06",
        "--out",
        str(out),
        "--detail",
        str(detail),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == [
        "month",
        "mrr",
        "customers",
        "new",
        "reactivation",
        "expansion",
        "contraction",
        "churn",
    ]
    assert [row["month"] for row in rows] == [
        "2025-01",
        "2025-02",
        "2025-03",
        "2025-04",
        "2025-05",
        "2025-06",
    ]
    assert rows[1] == {
        "month": "2025-02",
        "mrr": "200.00",
        "customers": "2",
        "new": "100.00",
        "reactivation": "0.00",
        "expansion": "0.00",
        "contraction": "0.00",
        "churn": "0.00",
    }
    assert rows[-1]["mrr"] == "0.00" and rows[-1]["churn"] == "100.00"
    assert "category" in detail.read_text().splitlines()[0]
    assert "2025-02" in result.output and "200.00" in result.output


def test_metrics_from_invoices(tmp_path):
    out = tmp_path / "bridge.csv"
    folder = export(tmp_path)
    args = ["metrics", str(folder), "--source", "invoices", "--out", str(out)]
    as_billed = CliRunner().invoke(main, args)
    assert as_billed.exit_code == 0, as_billed.output
    last = list(csv.DictReader(out.open()))[-1]
    assert last["month"] == "2025-04"  # the month of the latest invoice: billing known until then
    result = CliRunner().invoke(main, [*args, "--until", "2025-06"])
    assert result.exit_code == 0, result.output
    rows = {row["month"]: row for row in csv.DictReader(out.open())}
    assert rows["2025-04"]["mrr"] == "200.00" and rows["2025-05"]["churn"] == "100.00"
    assert rows["2025-06"]["churn"] == "100.00" and rows["2025-06"]["mrr"] == "0.00"


def test_several_currencies_need_a_reporting_currency_and_rates(tmp_path):
    folder = export(tmp_path, c2="USD")
    result = CliRunner().invoke(main, ["metrics", str(folder)])
    assert result.exit_code == 2
    assert "several currencies (EUR, USD)" in result.output and "--currency" in result.output
    assert "Traceback" not in result.output
    rates = tmp_path / "rates.csv"
    rates.write_text("date,currency,rate\n2025-01-01,USD,1.25\n")
    out = tmp_path / "bridge.csv"
    converted = CliRunner().invoke(
        main,
        ["metrics", str(folder), "--currency", "eur", "--rates", str(rates), "--out", str(out)],
    )
    assert converted.exit_code == 0, converted.output
    february = next(row for row in csv.DictReader(out.open()) if row["month"] == "2025-02")
    assert february["mrr"] == "180.00"  # 100 EUR + 100 USD ÷ 1.25
    half = CliRunner().invoke(main, ["metrics", str(folder), "--currency", "EUR"])
    assert half.exit_code == 2 and "--rates" in half.output


def test_reconcile_writes_its_findings_and_a_summary(tmp_path):
    folder = export(tmp_path)
    finance = tmp_path / "finance.csv"
    finance.write_text("month,mrr\n2025-02,200\n2025-03,250\n")
    (folder / "invoices.csv").write_text(INVOICES.replace("2025-06-15,200", "2025-05-15,120"))
    out = tmp_path / "rec"
    args = [
        "reconcile",
        str(folder),
        "--finance",
        str(finance),
        "--tolerance",
        "1%",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "invoices vs subscriptions" in result.output and "finance file: 1 of 2" in result.output
    sources = list(csv.DictReader((out / "sources.csv").open()))
    assert [(row["month"], row["cause"]) for row in sources] == [("2025-04-01", "price_mismatch")]
    assert (out / "finance.csv").is_file() and not (out / "fincome.csv").exists()
    bad = CliRunner().invoke(
        main, ["reconcile", str(folder), "--tolerance", "lots", "--out", str(out)]
    )
    assert bad.exit_code == 2 and "--tolerance" in bad.output
    month = CliRunner().invoke(main, ["metrics", str(folder), "--until", "June"])
    assert month.exit_code == 2 and "YYYY-MM" in month.output
