"""The rule catalog: every check the audit runs, with its code, severity, title, why and fix.

Rules are immutable declarations (see rule_base.py) grouped by frame in rules_customers.py,
rules_subscriptions.py, rules_invoices.py and rules_periods.py. Rules whose `check` is None are
implemented by the pandera schemas (schemas.py); PARSE-001 stands for the loader's parse issues.
"""

from __future__ import annotations

import polars as pl

from fincome_toolkit.rule_base import Rule, RuleOptions
from fincome_toolkit.rule_context import RuleContext
from fincome_toolkit.rules_customers import CUSTOMER_RULES
from fincome_toolkit.rules_invoices import INVOICE_RULES
from fincome_toolkit.rules_periods import PERIOD_RULES
from fincome_toolkit.rules_subscriptions import SUBSCRIPTION_RULES

PARSE_001 = Rule(
    "PARSE-001",
    "all",
    "error",
    title="Value could not be read",
    why="A date, amount, status or code the loader could not understand became empty: the "
    "record is incomplete and its MRR may be missing or wrong.",
    fix="Correct the value in the ERP export (the message gives the raw text and what was "
    "expected), or adjust the column mapping or parse options.",
    unit="rows",
)


def _sorted_by_code(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    return tuple(sorted(rules, key=lambda r: r.code))


RULES: tuple[Rule, ...] = (
    PARSE_001,
    *_sorted_by_code(CUSTOMER_RULES),
    *_sorted_by_code(SUBSCRIPTION_RULES),
    *_sorted_by_code(INVOICE_RULES + PERIOD_RULES),
)
RULES_BY_CODE: dict[str, Rule] = {r.code: r for r in RULES}
if len(RULES_BY_CODE) != len(RULES):  # pragma: no cover - guards the catalog itself
    raise RuntimeError("two rules share a code")


def get_rule(code: str) -> Rule:
    """The rule with this code; KeyError naming the known codes otherwise."""
    try:
        return RULES_BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown rule {code!r}; known rules: {', '.join(RULES_BY_CODE)}") from None


def rule_catalog(rules: tuple[Rule, ...] = RULES) -> pl.DataFrame:
    """The catalog as a frame: code, frame, severity, title, why, fix, unit, implemented_by."""
    return pl.DataFrame(
        [
            {
                "code": r.code,
                "frame": r.frame,
                "severity": r.severity,
                "title": r.title,
                "why": r.why,
                "fix": r.fix,
                "unit": r.unit,
                "implemented_by": "loader"
                if r.code == PARSE_001.code
                else ("pandera schema" if r.check is None else "polars rule"),
            }
            for r in rules
        ]
    )


__all__ = [
    "RULES",
    "RULES_BY_CODE",
    "Rule",
    "RuleContext",
    "RuleOptions",
    "get_rule",
    "rule_catalog",
]
