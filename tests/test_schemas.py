"""pandera models: targeted bad rows become issue rows with the record's id and source line."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from audit_builders import clean_dataset, customer, dataset, invoice, subscription

from fincome_toolkit import frames
from fincome_toolkit.errors import InputError
from fincome_toolkit.schemas import ISSUE_SCHEMA, validate_schemas


def test_clean_frames_validate_without_issues():
    issues = validate_schemas(clean_dataset())
    assert issues.is_empty()
    assert issues.schema == pl.Schema(ISSUE_SCHEMA)


def test_bad_customers_give_one_issue_per_failing_value():
    data = dataset(
        customers=[
            customer("C1"),
            customer("C2", name=None),  # line 3
            customer("C3", email="billing at c3"),  # line 4
            customer("C4", country="France"),  # line 5
            customer("C1"),  # line 6: the id again is a rule's business (CUS-002), not pandera's
            customer("C5") | {"id": None},  # line 7
        ]
    )
    rows = validate_schemas(data).select("rule", "record_id", "line", "column", "value").rows()
    assert sorted(rows, key=lambda r: (r[2], r[0])) == [
        ("CUS-001", "C2", 3, "name", None),
        ("CUS-004", "C3", 4, "email", "billing at c3"),
        ("CUS-005", "C4", 5, "country", "France"),
        ("CUS-001", None, 7, "id", None),
    ]


def test_bad_subscriptions_and_invoices():
    data = dataset(
        customers=[customer("C1")],
        subscriptions=[
            subscription("S1", "C1", currency="eur"),  # line 2
            subscription("S2", "C1", interval_count=0, quantity=-2),  # line 3
            subscription("S3", "C1", start_date="2025-05-01", end_date="2025-04-01"),  # line 4
            subscription("S4", "C1", end_date=None),  # open-ended: fine
        ],
        invoices=[
            invoice("I1", "S4", "C1", "2025-02-01", "2025-01-01"),  # line 2
            invoice("I2", "S4", "C1", "2025-01-01", "2025-02-01", tax_amount=Decimal("-3.5")),
            invoice("I3", None, "C1", None, None, type="one_off", currency="XYZ"),  # line 4
        ],
    )
    issues = validate_schemas(data)
    rows = issues.select("rule", "frame", "record_id", "line", "column", "value").rows()
    assert sorted(rows) == [
        ("INV-009", "invoices", "I1", 2, "period_end", "2025-01-01"),
        ("INV-018", "invoices", "I2", 3, "tax_amount", "-3.50"),
        ("INV-024", "invoices", "I3", 4, "currency", "XYZ"),
        ("SUB-005", "subscriptions", "S3", 4, "end_date", "2025-04-01"),
        ("SUB-006", "subscriptions", "S1", 2, "currency", "eur"),
        ("SUB-007", "subscriptions", "S2", 3, "interval_count", "0"),
        ("SUB-013", "subscriptions", "S2", 3, "quantity", "-2"),
    ]
    message = issues.filter(pl.col("rule") == "INV-009")["message"].item()
    assert message == "period_start 2025-02-01 is not before period_end 2025-01-01"
    assert set(issues["file"]) == {"subscriptions.csv", "invoices.csv"}
    severities = dict(issues.select("rule", "severity").unique().iter_rows())
    assert severities["INV-018"] == "warning" and severities["SUB-005"] == "error"


def test_a_frame_with_a_missing_column_is_unusable_input():
    data = clean_dataset()
    broken = frames.Dataset(
        customers=data.customers.drop("email"),
        subscriptions=data.subscriptions,
        invoices=data.invoices,
    )
    with pytest.raises(InputError, match="lacks the column"):
        validate_schemas(broken)


def test_a_frame_with_a_wrong_dtype_is_unusable_input():
    data = clean_dataset()
    broken = frames.Dataset(
        customers=data.customers,
        subscriptions=data.subscriptions,
        invoices=data.invoices.with_columns(pl.col("amount_excluding_tax").cast(pl.Float64)),
    )
    with pytest.raises(InputError, match="amount_excluding_tax is Float64"):
        validate_schemas(broken)
