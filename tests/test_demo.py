"""The one-command demo, end to end on the bundled sample: real files, a real sandbox on loopback
with faults on, and every output checked against the others."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from fincome_toolkit.cli import main
from fincome_toolkit.demo import (
    PLANTED_FINANCE_DIFFERENCES,
    SAMPLE_DIR,
    DemoSummary,
    load_export,
    run_demo,
)
from fincome_toolkit.sample import generate, write_export


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoSummary:
    """One run of the whole demo (about a minute: ~3,500 records through a faulty sandbox)."""
    return run_demo(tmp_path_factory.mktemp("demo"))


def _csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def test_every_loaded_row_is_accounted_for(demo: DemoSummary) -> None:
    loaded = load_export(SAMPLE_DIR)
    assert demo.loaded == sum(frame.height for frame in loaded.frames().values())
    results = _csv(demo.out_dir / "upload" / "results.csv")
    assert results.height == sum(demo.rows.values())  # one outcome per record sent to the plan
    by_outcome = dict(results.group_by("outcome").len().iter_rows())
    assert by_outcome.get("acknowledged", 0) == demo.upload.acknowledged
    assert by_outcome.get("held_back", 0) == demo.upload.held_back
    assert by_outcome.get("rejected", 0) == demo.upload.rejected
    # acknowledged + held back + rejected (+ conflict/pending, here none) + removed duplicates
    assert demo.accounted_for == demo.loaded
    assert demo.ok


def test_the_dirty_sample_holds_records_back_and_the_resume_sends_nothing(
    demo: DemoSummary,
) -> None:
    assert demo.verdict == "fail"
    assert demo.upload.held_back > 0  # planted defects, by design
    assert demo.upload.acknowledged > demo.upload.held_back
    assert demo.upload.pending == 0
    assert demo.resume.requests == 0
    assert demo.resume.skipped == demo.upload.acknowledged
    problems = _csv(demo.outputs["records held back or rejected (CSV)"])
    assert problems.height == demo.upload.held_back + demo.upload.rejected
    assert problems["detail"].null_count() == 0  # every one says why
    assert len(demo.problems) > 0


def test_the_sandbox_faults_were_met_and_survived(demo: DemoSummary) -> None:
    served = demo.sandbox_requests
    assert served.get("500", 0) + served.get("503", 0) > 0
    assert served.get("dropped", 0) > 0  # answers lost after the write: retried without duplicates
    # What Fincome holds is exactly what was acknowledged: nothing extra, nothing different.
    versus = _csv(demo.out_dir / "reconcile" / "vs_fincome.csv")
    assert set(versus["status"].unique()) <= {"missing"}
    results = _csv(demo.out_dir / "upload" / "results.csv")
    not_sent = results.filter(pl.col("outcome") != "acknowledged").select("entity", "record_id")
    sent = results.filter(pl.col("outcome") == "acknowledged").select("entity", "record_id")
    missing = versus.select("entity", pl.col("id").alias("record_id")).unique()
    assert missing.join(sent, on=["entity", "record_id"], how="semi").is_empty()
    assert missing.join(not_sent, on=["entity", "record_id"], how="anti").is_empty()


def test_clean_and_audit_outputs_agree(demo: DemoSummary) -> None:
    clean = demo.out_dir / "clean"
    loaded = load_export(SAMPLE_DIR)
    for name, frame in loaded.frames().items():
        assert pl.read_parquet(clean / f"{name}.parquet").height == frame.height
    assert _csv(clean / "parse_issues.csv").height == demo.parse_issues > 0
    summary = json.loads((demo.out_dir / "audit" / "summary.json").read_text())
    assert summary["verdict"] == demo.verdict
    issues = _csv(demo.out_dir / "audit" / "issues.csv")
    assert issues.height == sum(demo.issue_counts.values())
    report = (demo.out_dir / "audit" / "report.html").read_text(encoding="utf-8")
    assert "FAIL" in report
    changes = _csv(demo.outputs["fix change log (CSV)"])
    assert changes.height == demo.fixes
    for path in demo.outputs.values():
        assert path.exists(), path


def test_reconciliation_finds_the_planted_finance_differences(demo: DemoSummary) -> None:
    versus = pl.read_csv(demo.out_dir / "reconcile" / "vs_finance.csv", try_parse_dates=True)
    off = versus.filter(pl.col("level") == "total", ~pl.col("within_tolerance"))
    assert set(off["month"].to_list()) == set(PLANTED_FINANCE_DIFFERENCES), (
        "sample_data/finance_mrr.csv no longer matches the sample's MRR: regenerate it with "
        "python -c 'from fincome_toolkit.demo import write_finance_sample; write_finance_sample()'"
    )
    assert demo.finance_months_off == len(PLANTED_FINANCE_DIFFERENCES)
    sources = _csv(demo.out_dir / "reconcile" / "invoices_vs_subscriptions.csv")
    assert sources.height > 0  # the planted linking defects make the two MRR views differ


def test_metrics_bridge_adds_up(demo: DemoSummary) -> None:
    monthly = pl.read_csv(demo.out_dir / "metrics" / "movements.csv", infer_schema=False)
    money = ["start_mrr", "new", "reactivation", "expansion", "contraction", "churn", "fx"]
    cents = monthly.select(
        pl.col([*money, "end_mrr"]).str.replace(r"\.", "").cast(pl.Int64)
    ).with_columns(
        computed=pl.col("start_mrr")
        + pl.col("new")
        + pl.col("reactivation")
        + pl.col("expansion")
        - pl.col("contraction")
        - pl.col("churn")
        + pl.col("fx")
    )
    assert monthly.height > 12
    assert (cents["computed"] == cents["end_mrr"]).all()
    for name in ("mrr_by_customer.csv", "rates.csv", "cohorts.csv"):
        assert (demo.out_dir / "metrics" / name).stat().st_size > 0


def test_report_lines_say_where_everything_is(demo: DemoSummary) -> None:
    text = "\n".join(demo.report_lines())
    assert "held back" in text and "expected" in text
    assert "marimo edit notebooks/audit.py" in text
    for path in demo.outputs.values():
        assert str(path) in text


def test_cli_demo_on_another_export(tmp_path: Path) -> None:
    """`fincome-toolkit demo --data DIR --out DIR` on a small generated export: exit 0."""
    export = tmp_path / "export"
    write_export(generate(customers=30, seed=5, defects_per_kind=1), export)
    result = CliRunner().invoke(
        main, ["demo", "--data", str(export), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "Every row accounted for" in result.output
    assert "held-back and rejected records are expected" in result.output
    assert (tmp_path / "out" / "audit" / "report.html").is_file()


def test_cli_demo_reports_an_unusable_export_without_a_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["demo", "--data", str(empty), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "customers" in result.output  # says which file is missing
