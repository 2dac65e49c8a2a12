"""`fincome-toolkit clean`: outputs, summary and exit codes 0 / 1 / 2 (never a traceback)."""

from __future__ import annotations

import polars as pl
from click.testing import CliRunner

from fincome_toolkit import frames
from fincome_toolkit.cli import main

CUSTOMERS = "id;name;country\nC1;Café Dupont;France\nC2;Müller;Allemagne\n"
SUBSCRIPTIONS = (
    "id,customer_id,start_date,interval_unit,interval_count,amount_excluding_tax,currency\n"
    "S1,C1,2025-01-01,month,1,100.00,EUR\n"
)
INVOICES = (
    "id,customer_id,subscription_id,issue_date,status,amount_excluding_tax,currency\n"
    "I1,C1,S1,2025-01-01,paid,100.00,EUR\n"
)


def write_export(folder, *, invoices: str = INVOICES) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "customers.csv").write_text(CUSTOMERS, encoding="utf-8")
    (folder / "subscriptions.csv").write_text(SUBSCRIPTIONS, encoding="utf-8")
    (folder / "invoices.csv").write_text(invoices, encoding="utf-8")


def run(*args: str):
    return CliRunner().invoke(main, ["clean", *args])


def test_clean_export_exits_0_and_writes_canonical_files(tmp_path):
    write_export(tmp_path / "data")
    out = tmp_path / "out"
    result = run(str(tmp_path / "data"), "--out", str(out))
    assert result.exit_code == 0, result.output
    for name in frames.FRAME_NAMES:
        frame = pl.read_parquet(out / f"{name}.parquet")
        assert frame.schema == frames.canonical_schema(name)
    assert pl.read_parquet(out / "customers.parquet")["country"].to_list() == ["FR", "DE"]
    issues = pl.read_csv(out / "parse_issues.csv")
    assert issues.columns == list(frames.PARSE_ISSUE_SCHEMA) and issues.is_empty()
    assert "customers" in result.output and "parse issues" in result.output


def test_parse_issues_exit_1_with_top_reasons(tmp_path):
    invoices = INVOICES + "I2,C1,S1,31/02/2025,bizarre,12.345,EUR\n"
    write_export(tmp_path / "data", invoices=invoices)
    out = tmp_path / "out"
    result = run(str(tmp_path / "data"), "--out", str(out))
    assert result.exit_code == 1, result.output
    issues = pl.read_csv(out / "parse_issues.csv")
    assert sorted(issues["column"]) == ["amount_excluding_tax", "issue_date", "status"]
    assert set(issues["line"]) == {3}
    assert "invoices.status: unknown invoice status" in result.output
    assert pl.read_parquet(out / "invoices.parquet").height == 2  # nothing dropped


def test_mapping_option_and_default_mapping_file(tmp_path):
    data = tmp_path / "data"
    write_export(data)
    (data / "customers.csv").write_text("Code;Nom\nC1;A\n", encoding="utf-8")
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[customers.columns]\nid = "Code"\nname = "Nom"\n', encoding="utf-8")
    assert run(str(data), "--mapping", str(mapping), "--out", str(tmp_path / "o1")).exit_code == 0
    (data / "mapping.toml").write_text(mapping.read_text(), encoding="utf-8")
    assert run(str(data), "--out", str(tmp_path / "o2")).exit_code == 0


def test_unusable_input_exits_2_without_traceback(tmp_path):
    data = tmp_path / "data"
    write_export(data)
    (data / "invoices.csv").write_text("id,customer\nI1,C1\n", encoding="utf-8")
    result = run(str(data), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "required invoices field(s) not found" in result.output
    assert "how to fix" in result.output
    assert not (tmp_path / "out").exists()


def test_missing_folder_and_bad_mapping_exit_2(tmp_path):
    result = run(str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "data folder not found" in result.output
    write_export(tmp_path / "data")
    bad = tmp_path / "bad.toml"
    bad.write_text("[custmers]\n", encoding="utf-8")
    result = run(str(tmp_path / "data"), "--mapping", str(bad), "--out", str(tmp_path / "o"))
    assert result.exit_code == 2 and "did you mean 'customers'" in result.output
    assert "Traceback" not in result.output


def test_only_loads_a_subset(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "invoices.csv").write_text(INVOICES, encoding="utf-8")
    assert run(str(data), "--out", str(tmp_path / "o")).exit_code == 2
    result = run(str(data), "--only", "invoices", "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "o" / "customers.parquet").is_empty()
