"""Each rule of the catalog on small hand-built frames: it fails where it must, passes elsewhere."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import polars as pl
import pytest
from audit_builders import (
    AS_OF,
    D,
    clean_dataset,
    customer,
    dataset,
    invoice,
    monthly_invoices,
    replaced,
    subscription,
)

from fincome_toolkit import frames
from fincome_toolkit.audit import audit
from fincome_toolkit.rule_base import whole_months
from fincome_toolkit.rules import RULES, RULES_BY_CODE, get_rule, rule_catalog

CUSTOMERS = [customer("C1"), customer("C2", name="Globex", email="ap@globex.example")]
SUBS = [subscription("S1", "C1"), subscription("S2", "C2", start_date="2025-01-31", plan_id="team")]
S1_INVOICES = monthly_invoices("S1", "C1", "2025-01-01", 6)
S2_INVOICES = monthly_invoices("S2", "C2", "2025-01-31", 5)


def with_rows(customers=(), subscriptions=(), invoices=(), *, base_invoices=None):
    """The clean dataset plus extra rows (or other invoices than the clean ones)."""
    invoice_rows = S1_INVOICES + S2_INVOICES if base_invoices is None else base_invoices
    return dataset(
        customers=CUSTOMERS + list(customers),
        subscriptions=SUBS + list(subscriptions),
        invoices=invoice_rows + list(invoices),
    )


def issues_of(code: str, data: frames.Dataset, *, as_of: dt.date = AS_OF) -> pl.DataFrame:
    return audit(data, as_of=as_of, rules=[code]).issues.filter(pl.col("rule") == code)


# (rule, dataset with the defect, record ids expected in the issues, a fragment of a message)
CASES: list[tuple[str, Callable[[], frames.Dataset], list[str], str]] = [
    ("CUS-001", lambda: with_rows([customer("C3", name=None)]), ["C3"], "'name' is empty"),
    ("CUS-002", lambda: with_rows([customer("C1")]), ["C1", "C1"], "appears on 2 rows"),
    (
        "CUS-003",
        lambda: with_rows([customer("C1", name="Other")]),
        ["C1", "C1"],
        "disagree on name",
    ),
    (
        "CUS-004",
        lambda: with_rows([customer("C3", email="ap@globex"), customer("C4", email="a b@x.fr")]),
        ["C3", "C4"],
        "not an e-mail",
    ),
    ("CUS-005", lambda: with_rows([customer("C3", country="XX")]), ["C3"], "'XX' is not an ISO"),
    ("CUS-006", lambda: with_rows([customer("C3", root_parent_id="C9")]), ["C3"], "'C9' is not"),
    (
        "CUS-008",
        lambda: with_rows([customer("C3", name="GLOBEX S.A.S.", email="x@y.example")]),
        ["C2", "C3"],
        "same name as customer(s) C3",
    ),
    (
        "CUS-008",
        lambda: with_rows([customer("C3", name="Initech", email=" AP@Globex.example")]),
        ["C2", "C3"],
        "same email",
    ),
    (
        "CUS-009",
        lambda: with_rows(
            [customer("C3"), customer("P", name="Holding"), customer("C4", root_parent_id="P")]
        ),
        ["C3", "C4"],
        "no subscription references",
    ),
    (
        "SUB-001",
        lambda: with_rows(subscriptions=[subscription("S3", "C1", start_date=None)]),
        ["S3"],
        "'start_date' is empty",
    ),
    (
        "SUB-002",
        lambda: with_rows(subscriptions=[subscription("S1", "C1")]),
        ["S1", "S1"],
        "2 rows",
    ),
    (
        "SUB-003",
        lambda: with_rows(
            subscriptions=[subscription("S1", "C1", amount_excluding_tax=Decimal(90))]
        ),
        ["S1", "S1"],
        "disagree on amount_excluding_tax",
    ),
    ("SUB-004", lambda: with_rows(subscriptions=[subscription("S3", "C404")]), ["S3"], "'C404'"),
    (
        "SUB-005",
        lambda: with_rows(
            subscriptions=[
                subscription("S3", "C1", start_date="2025-03-01", end_date="2025-03-01"),
                subscription("S4", "C1", start_date="2025-03-01", end_date="2025-02-01"),
            ]
        ),
        ["S3", "S4"],
        "start_date 2025-03-01 is not before end_date 2025-02-01",
    ),
    (
        "SUB-006",
        lambda: with_rows(subscriptions=[subscription("S3", "C1", currency="EURO")]),
        ["S3"],
        "'EURO'",
    ),
    (
        "SUB-007",
        lambda: with_rows(subscriptions=[subscription("S3", "C1", interval_count=0)]),
        ["S3"],
        "below 1",
    ),
    (
        "SUB-008",
        lambda: with_rows(
            subscriptions=[subscription("S3", "C1", amount_excluding_tax=Decimal(-5))]
        ),
        ["S3"],
        "-5.00 EUR is negative",
    ),
    (
        "SUB-009",
        lambda: with_rows(
            subscriptions=[
                subscription("S3", "C1", amount_excluding_tax=Decimal(0)),
                subscription("S4", "C2", amount_excluding_tax=Decimal(0), status="trialing"),
            ]
        ),
        ["S3"],
        "is 0",
    ),
    (
        "SUB-010",
        lambda: with_rows(subscriptions=[subscription("S3", "C1", start_date="2025-03-01")]),
        ["S3"],
        "while subscription 'S1' of the same customer and plan 'pro' still runs (open-ended)",
    ),
    (
        "SUB-011",
        lambda: with_rows(
            subscriptions=[
                subscription("S3", "C1", plan_id="x"),
                subscription("S4", "C1", plan_id="y", start_date="2025-09-01"),
            ]
        ),
        ["S3"],
        "no invoice references",
    ),
    (
        "SUB-013",
        lambda: with_rows(subscriptions=[subscription("S3", "C1", quantity=-1)]),
        ["S3"],
        "-1",
    ),
    (
        "INV-001",
        lambda: with_rows(
            invoices=[invoice("X", "S1", "C1", None, None, issue_date=None, type="one_off")]
        ),
        ["X"],
        "'issue_date' is empty",
    ),
    ("INV-002", lambda: with_rows(invoices=[S1_INVOICES[0]]), ["IS1-1", "IS1-1"], "appears on 2"),
    (
        "INV-003",
        lambda: with_rows(invoices=[S1_INVOICES[0] | {"amount_excluding_tax": Decimal(1)}]),
        ["IS1-1", "IS1-1"],
        "disagree on amount_excluding_tax",
    ),
    (
        "INV-004",
        lambda: with_rows(invoices=[invoice("X", None, "C404", None, None, type="one_off")]),
        ["X"],
        "'C404'",
    ),
    (
        "INV-005",
        lambda: with_rows(invoices=[invoice("X", "S404", "C1", "2025-01-01", "2025-02-01")]),
        ["X"],
        "'S404'",
    ),
    (
        "INV-006",
        lambda: with_rows(
            invoices=[
                invoice("X", None, "C1", "2025-01-01", "2025-02-01"),
                invoice("Y", None, "C1", None, None, type="one_off"),
            ]
        ),
        ["X"],
        "no subscription_id",
    ),
    (
        "INV-007",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 2, customer_id="C2")),
        ["IS1-3"],
        "invoice customer 'C2' differs from customer 'C1' of subscription 'S1'",
    ),
    (
        "INV-008",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 5, issue_date="2025-07-02")),
        ["IS1-6"],
        "issued 2025-07-02, after 2025-06-30",
    ),
    (
        "INV-009",
        lambda: with_rows(invoices=[invoice("X", "S1", "C1", "2025-03-01", "2025-02-01")]),
        ["X"],
        "period_start 2025-03-01 is not before period_end 2025-02-01",
    ),
    (
        "INV-010",
        lambda: with_rows(invoices=[invoice("X", "S1", "C1", "2024-12-01", "2025-01-01")]),
        ["X"],
        "outside subscription 'S1' (2025-01-01 → open-ended)",
    ),
    (
        "INV-012",
        lambda: with_rows(base_invoices=S1_INVOICES[:3] + S1_INVOICES[4:]),
        ["IS1-5"],
        "period 2025-05-01 → 2025-06-01 starts 30 days after the previous one (invoice 'IS1-3') "
        "ended 2025-04-01",
    ),
    (
        "INV-013",
        lambda: with_rows(invoices=[invoice("X", "S1", "C1", "2025-03-15", "2025-04-15")]),
        ["X", "IS1-4"],
        "overlaps the previous one (invoice 'IS1-3') ending 2025-04-01",
    ),
    (
        "INV-014",
        lambda: with_rows(
            base_invoices=monthly_invoices("S1", "C1", "2025-01-01", 6, inclusive=True)
        ),
        ["S1"],
        "first 2025-01-01 → 2025-01-31",
    ),
    (
        "INV-015",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 0, currency="USD")),
        ["IS1-1"],
        "invoice in USD but subscription 'S1' is priced in EUR",
    ),
    (
        "INV-016",
        lambda: with_rows(
            base_invoices=replaced(
                replaced(S1_INVOICES, 0, amount_excluding_tax=Decimal(250)),
                1,
                amount_excluding_tax=Decimal(105),
            )
        ),
        ["IS1-1"],
        "amount 250.00 for 2025-01-01 → 2025-02-01 is 150% above the expected 100.0",
    ),
    (
        "INV-017",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 0, tax_amount=Decimal(150))),
        ["IS1-1"],
        "tax_amount 150.00 exceeds",
    ),
    (
        "INV-018",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 0, tax_amount=Decimal(-1))),
        ["IS1-1"],
        "-1.00 is negative",
    ),
    (
        "INV-019",
        lambda: dataset(
            CUSTOMERS,
            [subscription("S1", "C1", status="cancelled", end_date="2025-07-01")],
            replaced(S1_INVOICES, 5, status="open"),
        ),
        ["IS1-6"],
        "invoice is open but subscription 'S1' is cancelled (end_date 2025-07-01)",
    ),
    (
        "INV-020",
        lambda: with_rows(
            base_invoices=replaced(
                replaced(S1_INVOICES, 0, issue_date="2025-04-01"), 1, issue_date="2025-01-20"
            )
        ),
        ["IS1-1"],
        "issued 59 days after its period 2025-01-01 → 2025-02-01 ended",
    ),
    (
        "INV-021",
        lambda: with_rows(
            invoices=[invoice("X", None, "C1", "2025-01-01", "2025-02-01", type="one_off")]
        ),
        ["X"],
        "one-off invoice with service period",
    ),
    (
        "INV-022",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 5, period_end=None)),
        ["IS1-6"],
        "2025-06-01 → (empty)",
    ),
    (
        "INV-023",
        lambda: with_rows(invoices=[invoice("X", "S2", "C2", "2025-06-30", "2025-07-10")]),
        ["X"],
        "covers 10 days",
    ),
    (
        "INV-024",
        lambda: with_rows(base_invoices=replaced(S1_INVOICES, 0, currency="EU")),
        ["IS1-1"],
        "'EU' is not an active ISO 4217",
    ),
    (
        "INV-025",
        lambda: with_rows(
            base_invoices=replaced(S1_INVOICES, 0, amount_excluding_tax=Decimal(-100))
        ),
        ["IS1-1"],
        "-100.00 EUR is negative",
    ),
]


@pytest.mark.parametrize(("code", "make", "expected_ids", "fragment"), CASES)
def test_rule_finds_its_defect(code, make, expected_ids, fragment):
    issues = issues_of(code, make())
    assert sorted(issues["record_id"].to_list()) == sorted(expected_ids)
    assert any(fragment in message for message in issues["message"]), issues["message"].to_list()
    assert issues["line"].null_count() == 0 and issues["file"].null_count() == 0
    assert set(issues["severity"]) == {get_rule(code).severity}


@pytest.mark.parametrize("code", [r.code for r in RULES])
def test_every_rule_passes_on_clean_data(code):
    result = audit(clean_dataset(), as_of=AS_OF, rules=[code])
    assert result.issues.is_empty(), result.issues
    assert result.summary.row(0, named=True)["status"] == "passed"


def test_every_rule_has_a_failing_case():
    tested = {case[0] for case in CASES} | {"CUS-007", "SUB-012", "PARSE-001"}
    assert tested == set(RULES_BY_CODE)


def test_catalog_declares_everything_an_analyst_reads():
    catalog = rule_catalog()
    assert catalog["code"].is_unique().all()
    for column in ("title", "why", "fix", "unit"):
        assert (catalog[column].str.len_chars() > 3).all(), column
    assert set(catalog["severity"]) <= {"error", "warning", "info"}


def test_parent_cycles_flag_members_not_their_descendants():
    data = dataset(
        customers=[
            customer("A", root_parent_id="A"),  # its own parent
            customer("B", root_parent_id="C"),
            customer("C", root_parent_id="B"),  # B ↔ C
            customer("D", root_parent_id="B"),  # points into the cycle, is not on it
            customer("E", root_parent_id="F"),
            customer("F"),  # a sound two-level hierarchy
        ]
    )
    issues = issues_of("CUS-007", data).sort("record_id")
    assert issues["record_id"].to_list() == ["A", "B", "C"]
    messages = dict(zip(issues["record_id"], issues["message"], strict=True))
    assert messages["A"] == "customer 'A' is its own parent"
    assert "a cycle of 2 customers (B, C)" in messages["B"]


def test_status_contradictions_depend_on_the_audit_date():
    subs = [
        subscription("S1", "C1", status="active", end_date="2025-08-01"),
        subscription("S2", "C1", status="ended"),  # open-ended but "ended"
        subscription("S3", "C1", status="cancelled"),  # cancelled, no end: MRR never stops
        subscription("S4", "C1", status="cancelled", end_date="2025-12-01"),  # ends later: fine
        subscription("S5", "C1", status="ended", end_date="2025-05-01"),  # fine
    ]
    data = dataset(CUSTOMERS, subs)
    early = issues_of("SUB-012", data, as_of=D("2025-06-30"))
    assert sorted(early["record_id"]) == ["S2", "S3"]
    late = issues_of("SUB-012", data, as_of=D("2025-09-01"))
    assert sorted(late["record_id"]) == ["S1", "S2", "S3"]
    message = late.filter(pl.col("record_id") == "S1")["message"][0]
    assert message == "status 'active' but it ended on 2025-08-01 (as of 2025-09-01)"


def test_parse_issue_replaces_the_required_field_issue_it_explains():
    rows = replaced(S1_INVOICES, 1, issue_date=None)
    parse_issues = pl.DataFrame(
        [
            {
                "frame": "invoices",
                "file": "invoices.csv",
                "line": 3,
                "record_id": "IS1-2",
                "column": "issue_date",
                "raw_value": "31/02/2025",
                "reason": "not a date: '31/02/2025'",
            }
        ],
        schema=frames.PARSE_ISSUE_SCHEMA,
    )
    data = dataset(CUSTOMERS, SUBS, rows + S2_INVOICES, parse_issues=parse_issues)
    issues = audit(data, as_of=AS_OF).issues
    assert issues.select("rule", "record_id", "line", "value").rows() == [
        ("PARSE-001", "IS1-2", 3, "31/02/2025")
    ]
    # without the parse issue, the empty value is reported as a missing required field
    bare = audit(dataset(CUSTOMERS, SUBS, rows + S2_INVOICES), as_of=AS_OF).issues
    assert bare["rule"].to_list() == ["INV-001"]


def test_inclusive_end_pattern_is_one_warning_not_gaps_or_prorations():
    inclusive = monthly_invoices("S1", "C1", "2025-01-01", 6, inclusive=True)
    single = [invoice("X", "S2", "C2", "2025-02-01", "2025-02-28")]  # one period, one day short
    result = audit(dataset(CUSTOMERS, SUBS, inclusive + single), as_of=AS_OF)
    assert sorted(result.issues["rule"].to_list()) == ["INV-014", "INV-014"]
    assert sorted(result.issues["record_id"].to_list()) == ["S1", "S2"]


def test_overlap_inside_a_longer_period_is_found():
    yearly = [
        invoice("Y", "S1", "C1", "2025-01-01", "2026-01-01", amount_excluding_tax=Decimal(1200))
    ]
    monthly = [
        invoice("M", "S1", "C1", "2025-03-01", "2025-04-01"),
        invoice("N", "S1", "C1", "2025-05-01", "2025-06-01"),
    ]
    issues = issues_of("INV-013", dataset(CUSTOMERS, SUBS, yearly + monthly))
    assert sorted(issues["record_id"]) == ["M", "N"]
    assert all("(invoice 'Y') ending 2026-01-01" in m for m in issues["message"])


def test_amount_check_scales_the_price_to_the_period():
    quarterly = subscription(
        "S3", "C1", plan_id="q", interval_count=3, amount_excluding_tax=Decimal(300)
    )
    yearly = subscription(
        "S4", "C1", plan_id="y", interval_unit="year", amount_excluding_tax=Decimal(1200)
    )
    weekly = subscription(
        "S5", "C1", plan_id="w", interval_unit="week", amount_excluding_tax=Decimal(10)
    )
    invoices = [
        invoice("Q", "S3", "C1", "2025-01-01", "2025-04-01", amount_excluding_tax=Decimal(300)),
        invoice("Y1", "S4", "C1", "2025-01-01", "2025-02-01", amount_excluding_tax=Decimal(100)),
        invoice("W", "S5", "C1", "2025-01-01", "2025-01-15", amount_excluding_tax=Decimal(20)),
        invoice("Y2", "S4", "C1", "2025-02-01", "2025-03-01", amount_excluding_tax=Decimal(1200)),
    ]
    data = dataset(CUSTOMERS, [quarterly, yearly, weekly], invoices)
    assert issues_of("INV-016", data)["record_id"].to_list() == ["Y2"]


@pytest.mark.parametrize(
    ("start", "end", "whole"),
    [
        ("2025-01-01", "2025-02-01", True),
        ("2025-01-31", "2025-02-28", True),  # clipped to the month end
        ("2025-02-28", "2025-03-31", True),  # a 31st-anchored subscription after February
        ("2025-02-28", "2025-03-28", True),
        ("2024-01-31", "2024-02-29", True),  # leap year
        ("2024-02-29", "2025-02-28", True),  # a year from a leap day
        ("2024-02-29", "2024-03-29", True),
        ("2025-01-01", "2025-04-01", True),  # a quarter
        ("2025-01-01", "2025-01-31", False),  # inclusive end: one day short
        ("2025-01-15", "2025-02-14", False),
        ("2025-03-31", "2025-04-29", False),
        ("2025-01-01", "2025-01-01", False),
    ],
)
def test_whole_months_follow_calendar_month_arithmetic(start, end, whole):
    result = pl.select(whole_months(pl.lit(D(start)), pl.lit(D(end)))).item()
    assert result is whole


def test_prorated_periods_are_noted_but_anchored_months_are_not():
    invoices = [
        invoice("A", "S2", "C2", "2025-01-31", "2025-02-28"),
        invoice("B", "S2", "C2", "2025-02-28", "2025-03-31"),
        invoice("C", "S2", "C2", "2025-03-31", "2025-04-15"),  # prorated stop
    ]
    issues = issues_of("INV-023", dataset(CUSTOMERS, SUBS, invoices))
    assert issues["record_id"].to_list() == ["C"]


def test_duplicate_id_messages_list_the_lines_and_count_the_rest():
    data = dataset(customers=[customer("C1"), customer("C2"), customer("C1")])
    assert (
        issues_of("CUS-002", data)["message"].to_list()
        == ["id 'C1' appears on 2 rows (lines 2, 4)"] * 2
    )
    many = dataset(customers=[customer("C1")] * 13)
    message = issues_of("CUS-002", many)["message"][0]
    assert message == "id 'C1' appears on 13 rows (lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 3 more)"
