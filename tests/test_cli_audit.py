"""`fincome-toolkit audit`: exit codes 0/1/2, the terminal summary and the files it writes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from fincome_toolkit.cli import main
from fincome_toolkit.sample import AS_OF, generate, write_export


def run(*args: str):
    return CliRunner().invoke(main, ["audit", *args])


@pytest.fixture(scope="module")
def dirty_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dirty")
    write_export(generate(customers=120, seed=11, defects=True), folder)
    return folder


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clean")
    write_export(generate(customers=60, seed=12, defects=False), folder)
    return folder


def test_clean_export_exits_0(clean_export: Path):
    result = run(str(clean_export), "--as-of", AS_OF.isoformat())
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    assert "rules passed" in result.output


def test_errors_exit_1_and_every_output_is_written(dirty_export: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run(
        str(dirty_export),
        "--mapping", str(dirty_export / "mapping.toml"),
        "--as-of", AS_OF.isoformat(),
        "--report", str(out / "report.html"),
        "--json", str(out / "summary.json"),
        "--issues", str(out / "issues.csv"),
        "--failing-records", str(out / "failing"),
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.output and "CUS-007" in result.output
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["verdict"] == "fail" and summary["counts"]["error"] > 0
    issues = pl.read_csv(out / "issues.csv")
    assert issues.columns[:3] == ["rule", "severity", "frame"]
    assert {"PARSE-001", "INV-013", "SUB-012"} <= set(issues["rule"])
    failing = pl.read_csv(out / "failing" / "failing_invoices.csv", infer_schema=False)
    assert failing.height > 0 and "rules" in failing.columns
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "INV-013" in html


def test_thresholds_from_a_settings_file_change_the_exit_code(clean_export: Path, tmp_path: Path):
    # as of long before the data, every invoice is "in the future": a warning, not an error...
    early = ["--as-of", "2020-01-01"]
    assert run(str(clean_export), *early).exit_code == 0
    # ...until the settings escalate it past 10% of the invoices
    settings = tmp_path / "audit.toml"
    settings.write_text("[audit.thresholds]\nINV-008 = { error = 0.1 }\n", encoding="utf-8")
    result = run(str(clean_export), *early, "--settings", str(settings))
    assert result.exit_code == 1, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "{missing}"),
        (["{clean}", "--as-of", "next week"], "is not a date"),
        (["{clean}", "--mapping", "{missing}/mapping.toml"], "mapping.toml"),
        (["{clean}", "--settings", "{missing}/audit.toml"], "cannot read the settings file"),
    ],
)
def test_unusable_input_exits_2_with_a_message(
    clean_export: Path, tmp_path: Path, args: list[str], message: str
):
    places = {"missing": str(tmp_path / "nowhere"), "clean": str(clean_export)}
    result = run(*(a.format(**places) for a in args))
    assert result.exit_code == 2, result.output
    assert message.format(**places) in result.output
    assert "Traceback" not in result.output
