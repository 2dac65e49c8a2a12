"""Safe fixes: each change logged before → after, and the audit no longer reports what was fixed."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
from audit_builders import (
    AS_OF,
    clean_dataset,
    customer,
    dataset,
    invoice,
    monthly_invoices,
    subscription,
)

from fincome_toolkit import frames
from fincome_toolkit.audit import audit
from fincome_toolkit.fixes import (
    ALL_SAFE_FIXES,
    EXACT_DUPLICATES,
    INCLUSIVE_END_PERIODS,
    apply_fixes,
)

CUSTOMERS = [customer("C1"), customer("C2", name="Globex", email="ap@globex.example")]
SUBS = [subscription("S1", "C1"), subscription("S2", "C2", plan_id="team")]


def rules_found(data: frames.Dataset) -> list[str]:
    return sorted(set(audit(data, as_of=AS_OF).issues["rule"]))


def test_ids_are_trimmed_and_codes_upper_cased():
    data = dataset(
        customers=[customer(" C1 ", email="ap@c1.example"), customer("C2", country="fr ")],
        subscriptions=[subscription("S1", "C1", currency="eur"), subscription("S2", "C2")],
        invoices=monthly_invoices("S1", "C1 ", "2025-01-01", 2)
        + monthly_invoices("S2", "C2", "2025-01-01", 2),
    )
    assert rules_found(data) == [
        "CUS-005",
        "CUS-009",
        "INV-004",
        "INV-007",
        "INV-015",
        "SUB-004",
        "SUB-006",
    ]
    fixed = apply_fixes(data)
    changes = fixed.changes.select("fix", "frame", "record_id", "line", "column", "before", "after")
    assert sorted(changes.rows()) == [
        ("code_case", "customers", "C2", 3, "country", "fr ", "FR"),
        ("code_case", "subscriptions", "S1", 2, "currency", "eur", "EUR"),
        ("trim_ids", "customers", " C1 ", 2, "id", " C1 ", "C1"),
        ("trim_ids", "invoices", "IS1-1", 2, "customer_id", "C1 ", "C1"),
        ("trim_ids", "invoices", "IS1-2", 3, "customer_id", "C1 ", "C1"),
    ]
    assert rules_found(fixed.dataset) == []


def test_inclusive_ends_get_one_more_day_when_the_pattern_is_consistent():
    inclusive = monthly_invoices("S1", "C1", "2025-01-31", 3, inclusive=True)
    # one irregular period keeps S2 out of the fix: a human must look at it
    mixed = [
        invoice("A", "S2", "C2", "2025-01-01", "2025-01-31"),
        invoice("B", "S2", "C2", "2025-02-01", "2025-03-01"),
    ]
    data = dataset(
        CUSTOMERS, [subscription("S1", "C1", start_date="2025-01-31"), SUBS[1]], inclusive + mixed
    )
    assert "INV-014" in rules_found(data)
    fixed = apply_fixes(data, fixes=(INCLUSIVE_END_PERIODS,))
    assert fixed.changes.select("record_id", "before", "after").rows() == [
        ("IS1-1", "2025-02-27", "2025-02-28"),
        ("IS1-2", "2025-03-30", "2025-03-31"),
        ("IS1-3", "2025-04-29", "2025-04-30"),
    ]
    after = audit(fixed.dataset, as_of=AS_OF).issues
    assert "INV-014" not in set(after["rule"])
    assert after.filter(pl.col("record_id") == "B")["rule"].to_list() == ["INV-012"]


def test_exact_duplicates_are_removed_but_conflicting_ones_are_kept():
    invoices = monthly_invoices("S1", "C1", "2025-01-01", 3) + monthly_invoices(
        "S2", "C2", "2025-01-01", 3
    )
    exact = invoices[0]
    conflicting = invoices[3] | {"amount_excluding_tax": Decimal("99.00")}
    data = dataset(CUSTOMERS, SUBS, [*invoices, exact, conflicting])
    fixed = apply_fixes(data, fixes=(EXACT_DUPLICATES,))
    assert fixed.changes.select("record_id", "line", "column", "before", "after").rows() == [
        ("IS1-1", 8, "*", "duplicate of line 2", "(row removed)")
    ]
    assert fixed.dataset.invoices.height == data.invoices.height - 1
    remaining = audit(fixed.dataset, as_of=AS_OF).issues
    assert set(remaining["record_id"]) == {"IS2-1"}  # the conflicting pair stays for a human
    assert {"INV-002", "INV-003"} <= set(remaining["rule"])


def test_status_spellings_are_read_again_with_the_synonyms_given():
    rows = monthly_invoices("S1", "C1", "2025-01-01", 2) + monthly_invoices(
        "S2", "C2", "2025-01-01", 2
    )
    rows[1] = rows[1] | {"status": None}
    parse_issues = pl.DataFrame(
        [
            {
                "frame": "invoices",
                "file": "invoices.csv",
                "line": 3,
                "record_id": "IS1-2",
                "column": "status",
                "raw_value": "En litige",
                "reason": "unknown invoice status",
            }
        ],
        schema=frames.PARSE_ISSUE_SCHEMA,
    )
    data = dataset(CUSTOMERS, SUBS, rows, parse_issues=parse_issues)
    assert rules_found(data) == ["PARSE-001"]
    unchanged = apply_fixes(data)
    assert unchanged.changes.is_empty() and unchanged.dataset.parse_issues.height == 1
    fixed = apply_fixes(data, status_synonyms={"en litige": "unpaid"})
    assert fixed.changes.select("record_id", "column", "before", "after", "fix").rows() == [
        ("IS1-2", "status", "En litige", "unpaid", "status_synonyms")
    ]
    assert fixed.dataset.invoices["status"][1] == "unpaid"
    assert fixed.dataset.parse_issues.is_empty()
    assert rules_found(fixed.dataset) == []


def test_nothing_to_fix_changes_nothing():
    data = clean_dataset()
    fixed = apply_fixes(data, fixes=ALL_SAFE_FIXES)
    assert fixed.changes.is_empty()
    for name in frames.FRAME_NAMES:
        assert fixed.dataset.frame(name).equals(data.frame(name))


def test_the_audit_itself_never_changes_the_data():
    invoices = monthly_invoices("S1", "C1", "2025-01-01", 2, inclusive=True)
    data = dataset(CUSTOMERS, SUBS[:1], [*invoices, invoices[0]])
    before = data.invoices.clone()
    audit(data, as_of=AS_OF)
    assert data.invoices.equals(before)
