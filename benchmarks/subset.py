"""The single-frame rule subset every peer runs, declared once so the three versions stay equal.

Each check names the toolkit rule code it mirrors. The peers (pointblank, pandas + pandera) and
the toolkit's own restricted audit (`TOOLKIT_SUBSET_CODES`) are built from these declarations, so
"faster than each peer on its subset" compares the same work: not-null of required fields,
unique ids, value sets (ISO countries and currencies, statuses, interval units), a regex on
e-mails, ranges (amounts, tax, interval count, quantity) and `start < end` within a row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DATE_COLUMNS = {
    "customers": (),
    "subscriptions": ("start_date", "end_date", "cancelled_at"),
    "invoices": ("issue_date", "due_date", "period_start", "period_end"),
}
ID_COLUMNS = {
    "customers": ("id", "root_parent_id", "zip_code"),
    "subscriptions": ("id", "customer_id", "plan_id"),
    "invoices": ("id", "customer_id", "subscription_id"),
}


@dataclass(frozen=True)
class Check:
    """One check of one frame: `kind` is not_null, unique, in_set, regex, ge or lt_column."""

    frame: str
    kind: str
    column: str
    rule: str  # the toolkit rule code it mirrors
    value: object = None  # the set, pattern, bound or other column


def subset_checks() -> list[Check]:
    """The subset, frame by frame (nulls pass every check but not_null, as in the toolkit).

    The toolkit is imported here only: the peers' processes receive the checks as plain data
    (`as_data`/`from_data`), so their time and memory carry none of the toolkit's imports.
    """
    from fincome_toolkit.codes import ISO_3166_ALPHA2_COUNTRIES, ISO_4217_CURRENCIES
    from fincome_toolkit.frames import (
        INTERVAL_UNITS,
        INVOICE_STATUSES,
        INVOICE_TYPES,
        REQUIRED_FIELDS,
        SUBSCRIPTION_STATUSES,
    )
    from fincome_toolkit.schemas import EMAIL_PATTERN

    countries, currencies = sorted(ISO_3166_ALPHA2_COUNTRIES), sorted(ISO_4217_CURRENCIES)
    checks: list[Check] = []
    prefix = {"customers": "CUS", "subscriptions": "SUB", "invoices": "INV"}
    for frame, required in REQUIRED_FIELDS.items():
        checks += [Check(frame, "not_null", column, f"{prefix[frame]}-001") for column in required]
        checks.append(Check(frame, "unique", "id", f"{prefix[frame]}-002"))
    checks += [
        Check("customers", "regex", "email", "CUS-004", EMAIL_PATTERN),
        Check("customers", "in_set", "country", "CUS-005", countries),
        Check("subscriptions", "in_set", "currency", "SUB-006", currencies),
        Check("subscriptions", "in_set", "status", "PARSE-001", list(SUBSCRIPTION_STATUSES)),
        Check("subscriptions", "in_set", "interval_unit", "PARSE-001", list(INTERVAL_UNITS)),
        Check("subscriptions", "ge", "interval_count", "SUB-007", 1),
        Check("subscriptions", "ge", "quantity", "SUB-013", 0),
        Check("subscriptions", "ge", "amount_excluding_tax", "SUB-008", 0),
        Check("subscriptions", "lt_column", "start_date", "SUB-005", "end_date"),
        Check("invoices", "in_set", "currency", "INV-024", currencies),
        Check("invoices", "in_set", "status", "PARSE-001", list(INVOICE_STATUSES)),
        Check("invoices", "in_set", "type", "PARSE-001", list(INVOICE_TYPES)),
        Check("invoices", "ge", "tax_amount", "INV-018", 0),
        Check("invoices", "ge", "amount_excluding_tax", "INV-025", 0),
        Check("invoices", "lt_column", "period_start", "INV-009", "period_end"),
    ]
    return checks


def as_data(checks: list[Check]) -> list[dict[str, Any]]:
    """The checks as JSON-ready dicts, for a child process."""
    return [asdict(check) for check in checks]


def from_data(data: list[dict[str, Any]]) -> list[Check]:
    """The checks back from `as_data`."""
    return [Check(**item) for item in data]


def toolkit_subset_codes() -> tuple[str, ...]:
    """The toolkit's restricted audit: the rules the subset mirrors (PARSE-001 covers the value
    sets of statuses and units, which the loader enforces while parsing)."""
    return tuple(sorted({check.rule for check in subset_checks()}))
