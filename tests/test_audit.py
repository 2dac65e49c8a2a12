"""The audit engine: summary, verdict, thresholds, settings, records to hold back or fix."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from audit_builders import (
    AS_OF,
    clean_dataset,
    customer,
    dataset,
    monthly_invoices,
    replaced,
    subscription,
)

from fincome_toolkit import frames
from fincome_toolkit.audit import SUMMARY_SCHEMA, AuditResult, audit
from fincome_toolkit.audit_settings import AuditSettings, Thresholds
from fincome_toolkit.errors import ConfigError, InputError
from fincome_toolkit.rule_base import RuleOptions
from fincome_toolkit.rules import RULES

CUSTOMERS = [customer("C1"), customer("C2", name="Globex", email="ap@globex.example")]
SUBS = [subscription("S1", "C1"), subscription("S2", "C2", plan_id="team")]
INVOICES = monthly_invoices("S1", "C1", "2025-01-01", 6) + monthly_invoices(
    "S2", "C2", "2025-01-01", 4
)


def dirty_dataset() -> frames.Dataset:
    """One error (unknown customer on IS1-2) and one warning (amount far from price on IS2-1)."""
    invoices = replaced(INVOICES, 1, customer_id="C404")
    invoices = replaced(invoices, 6, amount_excluding_tax=Decimal(300))
    return dataset(CUSTOMERS, SUBS, invoices)


def test_summary_has_every_rule_passed_ones_included():
    result = audit(clean_dataset(), as_of=AS_OF)
    assert result.summary.schema == pl.Schema(SUMMARY_SCHEMA)
    assert result.summary["rule"].to_list() == [r.code for r in RULES]
    assert set(result.summary["status"]) == {"passed"}
    assert result.verdict == "pass" and not result.blocking
    assert result.counts == {"error": 0, "warning": 0, "info": 0}
    row = result.summary.filter(pl.col("rule") == "INV-012").row(0, named=True)
    assert row["checked"] == 2  # period-sequence rules count invoiced subscriptions


def test_errors_fail_the_audit_and_are_counted():
    result = audit(dirty_dataset(), as_of=AS_OF)
    assert result.verdict == "fail" and result.blocking
    assert result.counts == {"error": 2, "warning": 1, "info": 0}
    failing = result.summary.filter(pl.col("status") != "passed")
    assert failing.select("rule", "checked", "failed", "status").rows() == [
        ("INV-004", 10, 1, "error"),
        ("INV-007", 10, 1, "error"),
        ("INV-016", 10, 1, "warning"),
    ]
    assert failing["failed_fraction"].to_list() == [0.1, 0.1, 0.1]
    assert result.issues.columns == [
        "rule", "severity", "frame", "record_id", "file", "line", "column", "value", "message",
    ]  # fmt: skip
    assert result.issues.schema["line"] == pl.Int64


def test_blocked_records_are_those_with_an_error():
    result = audit(dirty_dataset(), as_of=AS_OF)
    assert result.blocked_records().rows() == [("invoices", "IS1-2")]


def test_failing_records_are_the_source_rows_with_their_rules():
    result = audit(dirty_dataset(), as_of=AS_OF)
    failing = result.failing_records("invoices")
    assert failing["id"].to_list() == ["IS1-2", "IS2-1"]
    assert failing.columns[: len(frames.canonical_schema("invoices"))] == list(
        frames.canonical_schema("invoices")
    )
    assert failing["rules"].to_list() == [["INV-004", "INV-007"], ["INV-016"]]
    assert failing["worst_severity"].to_list() == ["error", "warning"]
    assert failing["messages"][0][0].startswith("INV-004: customer 'C404' is not in")
    assert result.failing_records("customers").is_empty()


def test_a_warning_rule_escalates_to_error_past_a_fraction():
    data = dirty_dataset()  # INV-016 fails 1 invoice of 10
    above = audit(data, as_of=AS_OF, thresholds={"INV-016": Thresholds(error=0.05)})
    below = audit(data, as_of=AS_OF, thresholds={"INV-016": Thresholds(error=0.5)})
    status = lambda r: r.summary.filter(pl.col("rule") == "INV-016")["status"].item()  # noqa: E731
    assert status(above) == "error" and status(below) == "warning"
    severities = above.issues.filter(pl.col("rule") == "INV-016")["severity"]
    assert severities.to_list() == ["error"]


def test_thresholds_by_count_can_tolerate_an_error_rule():
    data = dirty_dataset()
    tolerant = audit(
        data,
        as_of=AS_OF,
        thresholds={"INV-004": Thresholds(error=2), "INV-007": Thresholds(error=2)},
    )
    assert tolerant.verdict == "pass"
    statuses = dict(tolerant.summary.select("rule", "status").iter_rows())
    assert statuses["INV-004"] == "warning" and statuses["INV-007"] == "warning"
    noted = audit(data, as_of=AS_OF, thresholds={"INV-016": Thresholds(warning=3)})
    assert noted.summary.filter(pl.col("rule") == "INV-016")["status"].item() == "info"


def test_thresholds_severity_levels():
    assert Thresholds().severity("warning", failed=0, checked=10) == "passed"
    assert Thresholds().severity("warning", failed=1, checked=10) == "warning"
    assert Thresholds(error=3).severity("warning", failed=3, checked=10) == "error"
    assert Thresholds(error=0.5).severity("error", failed=4, checked=10) == "warning"
    assert Thresholds(warning=0.5).severity("info", failed=5, checked=10) == "warning"
    assert Thresholds(warning=0.5).severity("info", failed=5, checked=0) == "info"


@pytest.mark.parametrize("limit", [0, -1, 1.5, 0.0, "5%", True])
def test_bad_thresholds_are_refused(limit):
    with pytest.raises(ConfigError):
        Thresholds(error=limit)


def test_settings_load_from_a_toml_table(tmp_path: Path):
    path = tmp_path / "audit.toml"
    path.write_text(
        """
[audit]
as_of = 2025-03-15
skip = ["CUS-009"]
amount_tolerance = 0.5
issue_date_window_days = 10

[audit.thresholds]
INV-016 = { error = 0.05 }
"INV-004" = { warning = 1, error = 3 }
""",
        encoding="utf-8",
    )
    settings = AuditSettings.from_toml(path)
    assert settings == AuditSettings(
        as_of=dt.date(2025, 3, 15),
        thresholds={"INV-016": Thresholds(error=0.05), "INV-004": Thresholds(warning=1, error=3)},
        options=RuleOptions(amount_tolerance=0.5, issue_date_window_days=10),
        skip=("CUS-009",),
    )
    result = audit(dirty_dataset(), settings=settings)
    assert "CUS-009" not in result.summary["rule"].to_list()
    assert result.context["as_of"] == "2025-03-15"
    # 300 for a 100 price is within a 50% tolerance? no: 200% above, still flagged
    assert result.summary.filter(pl.col("rule") == "INV-016")["status"].item() == "error"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[audit]\ncolour = 'red'\n", "unknown audit setting"),
        ("[audit.thresholds]\nINV-016 = { fatal = 1 }\n", "bad audit threshold"),
        ("[audit]\nas_of = 'soon'\n", "is not a date"),
        ("[audit\n", "not valid TOML"),
    ],
)
def test_bad_settings_files_say_what_is_wrong(tmp_path: Path, text: str, message: str):
    path = tmp_path / "audit.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        AuditSettings.from_toml(path)


def test_as_of_defaults_to_today_and_accepts_text():
    data = dataset(CUSTOMERS, SUBS, replaced(INVOICES, 0, issue_date="2999-01-01"))
    today = audit(data)
    assert today.context["as_of"] == dt.date.today().isoformat()
    assert "INV-008" in set(today.issues["rule"])
    later = audit(data, as_of="3000-01-01")
    assert "INV-008" not in set(later.issues["rule"])


def test_rules_can_be_chosen_and_unknown_codes_refused():
    result = audit(dirty_dataset(), as_of=AS_OF, rules=["INV-004", "CUS-001"])
    assert result.summary["rule"].to_list() == ["INV-004", "CUS-001"]
    assert set(result.issues["rule"]) == {"INV-004"}
    with pytest.raises(ConfigError, match="unknown rule 'NOPE-1'"):
        audit(dirty_dataset(), rules=["NOPE-1"])


def test_context_cites_the_files_with_their_sha256(tmp_path: Path):
    export = tmp_path / "invoices.csv"
    export.write_text("id\n", encoding="utf-8")
    digest = hashlib.sha256(export.read_bytes()).hexdigest()
    base = clean_dataset()
    data = frames.Dataset(
        base.customers,
        base.subscriptions,
        base.invoices,
        sources=(frames.SourceFile("invoices", export, digest, "csv", 11, "utf-8", ","),),
    )
    context = audit(data, as_of=AS_OF).context
    assert context["files"] == [
        {"frame": "invoices", "path": str(export), "format": "csv", "rows": 11,
         "sha256": digest, "encoding": "utf-8", "delimiter": ","}
    ]  # fmt: skip
    assert context["rows"] == {"customers": 2, "subscriptions": 2, "invoices": 11}
    assert context["version"] and context["generated_at"]


def test_a_frame_missing_a_column_is_unusable():
    base = clean_dataset()
    data = frames.Dataset(base.customers, base.subscriptions.drop("currency"), base.invoices)
    with pytest.raises(InputError, match="subscriptions frame lacks the column"):
        audit(data)


def test_empty_dataset_passes_with_nothing_checked():
    result = audit(frames.Dataset(), as_of=AS_OF)
    assert result.verdict == "pass"
    assert result.summary["checked"].sum() == 0


def test_the_result_renders_in_notebooks():
    result = audit(dirty_dataset(), as_of=AS_OF)
    assert isinstance(result, AuditResult)
    html = result._repr_html_()
    assert "INV-004" in html and "<" in html
    assert result._mime_() == ("text/html", html)
    assert repr(result) == "AuditResult(verdict='fail', 2 error, 1 warning, 0 info)"


# -- against the sample generator's planted defects ------------------------------------------

# Each planted defect kind (CONTRIBUTING.md) → the rules that must report its record. A tuple of
# sets means "one of": a non-positive amount is SUB-008 when negative, SUB-009 when zero.
KIND_RULES: dict[str, set[str] | tuple[set[str], ...]] = {
    "unparseable_date": {"PARSE-001"},
    "unparseable_amount": {"PARSE-001"},
    "unknown_status": {"PARSE-001"},
    "unknown_currency": {"PARSE-001"},
    "unknown_country": {"PARSE-001"},
    "duplicate_customer_id": {"CUS-002"},
    "conflicting_customer": {"CUS-002", "CUS-003"},
    "invalid_email": {"CUS-004"},
    "unknown_parent": {"CUS-006"},
    "parent_cycle": {"CUS-007"},
    "probable_duplicate_customer": {"CUS-008"},
    "customer_without_subscription": {"CUS-009"},
    "missing_name": {"CUS-001"},
    "duplicate_subscription_id": {"SUB-002"},
    "subscription_unknown_customer": {"SUB-004"},
    "subscription_start_not_before_end": {"SUB-005"},
    "nonpositive_subscription_amount": ({"SUB-008"}, {"SUB-009"}),
    "overlapping_subscriptions": {"SUB-010"},
    "subscription_without_invoice": {"SUB-011"},
    "status_contradicts_dates": {"SUB-012"},
    "duplicate_invoice_id": {"INV-002"},
    "invoice_unknown_customer": {"INV-004"},
    "invoice_unknown_subscription": {"INV-005"},
    "invoice_customer_mismatch": {"INV-007"},
    "future_issue_date": {"INV-008"},
    "invoice_period_not_increasing": {"INV-009"},
    "period_outside_subscription": {"INV-010"},
    "period_gap": {"INV-012"},
    "period_overlap": {"INV-013"},
    "inclusive_end_periods": {"INV-014"},
    "invoice_currency_mismatch": {"INV-015"},
    "amount_far_from_price": {"INV-016"},
    "tax_exceeds_amount": {"INV-017"},
    "open_invoice_on_cancelled_subscription": {"INV-019"},
    "issue_date_far_from_period": {"INV-020"},
    "one_off_with_period": {"INV-021"},
    "negative_tax": {"INV-018"},
}


def missed_defects(result: AuditResult, manifest: pl.DataFrame) -> list[str]:
    """Manifest rows whose record lacks the expected rule(s), described for the failure output."""
    found = result.issues.group_by("frame", "record_id").agg(rules=pl.col("rule").unique())
    joined = manifest.join(
        found, left_on=["frame", "id"], right_on=["frame", "record_id"], how="left"
    )
    missed = []
    for row in joined.iter_rows(named=True):
        rules = set(row["rules"] or ())
        expected = KIND_RULES[row["kind"]]
        options = expected if isinstance(expected, tuple) else (expected,)
        if not any(option <= rules for option in options):
            missed.append(f"{row['kind']} on {row['frame']} {row['id']}: found {sorted(rules)}")
    return missed


def test_the_mapping_covers_every_kind_the_generator_plants():
    from fincome_toolkit.sample import DEFECT_KINDS

    assert set(KIND_RULES) == set(DEFECT_KINDS)
    assert all(codes <= set(r.code for r in RULES) for codes in _all_codes())


def _all_codes():
    for expected in KIND_RULES.values():
        yield from (expected if isinstance(expected, tuple) else (expected,))


@pytest.mark.parametrize(("customers", "seed"), [(250, 0), (400, 7)])
def test_every_planted_defect_is_found_in_a_generated_set(customers: int, seed: int):
    from fincome_toolkit.sample import generate

    sample = generate(customers=customers, seed=seed, defects=True)
    result = audit(sample.dataset, as_of=sample.as_of)
    assert sample.manifest.height >= len(KIND_RULES)
    assert missed_defects(result, sample.manifest) == []
    assert result.verdict == "fail"


def test_every_planted_defect_is_found_after_export_and_loading(tmp_path: Path):
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.sample import generate, write_export

    sample = generate(customers=250, seed=3, defects=True)
    paths = write_export(sample, tmp_path)
    loaded = load_dataset(tmp_path, mapping=paths["mapping"])
    result = audit(loaded, as_of=sample.as_of)
    manifest = pl.read_csv(paths["manifest"], schema_overrides={"column": pl.String})
    assert missed_defects(result, manifest) == []
    parse = result.issues.filter(pl.col("rule") == "PARSE-001")
    assert parse["line"].null_count() == 0  # tied to the source line of the export
    # the value the loader could not read is reported once, not also as "required field empty"
    assert (
        not result.issues.join(parse, on=["frame", "record_id", "column"], how="semi")
        .filter(pl.col("rule") != "PARSE-001")
        .height
    )


SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"


@pytest.mark.skipif(
    not (SAMPLE_DATA / "manifest.csv").is_file(), reason="sample_data/ not generated yet"
)
def test_every_planted_defect_is_found_in_the_shipped_sample_data():
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.sample import AS_OF as SAMPLE_AS_OF

    mapping = SAMPLE_DATA / "mapping.toml"
    loaded = load_dataset(SAMPLE_DATA, mapping=mapping if mapping.is_file() else None)
    result = audit(loaded, as_of=SAMPLE_AS_OF)
    manifest = pl.read_csv(SAMPLE_DATA / "manifest.csv", schema_overrides={"column": pl.String})
    assert manifest.height > 0
    assert missed_defects(result, manifest) == []


@pytest.mark.parametrize(("customers", "seed"), [(60, 1), (300, 2), (800, 5)])
def test_the_clean_generated_variant_has_no_error(customers: int, seed: int):
    from fincome_toolkit.sample import generate

    sample = generate(customers=customers, seed=seed, defects=False)
    result = audit(sample.dataset, as_of=sample.as_of)
    errors = result.issues.filter(pl.col("severity") == "error")
    assert errors.is_empty(), errors.head(10).rows()
    assert result.verdict == "pass"


def test_fixing_a_generated_set_removes_what_the_fixes_cover():
    from fincome_toolkit.fixes import apply_fixes
    from fincome_toolkit.sample import generate

    sample = generate(customers=250, seed=4, defects=True)
    before = audit(sample.dataset, as_of=sample.as_of)
    fixed = apply_fixes(sample.dataset)
    after = audit(fixed.dataset, as_of=sample.as_of)
    assert set(fixed.changes["fix"]) == {"inclusive_end_periods", "exact_duplicates"}
    assert "INV-014" in set(before.issues["rule"]) and "INV-014" not in set(after.issues["rule"])
    exact = sample.manifest.filter(pl.col("kind").str.starts_with("duplicate_"))
    still = after.issues.filter(pl.col("rule").is_in(["CUS-002", "SUB-002", "INV-002"]))
    assert not still.join(exact, left_on="record_id", right_on="id", how="semi").height
