"""`fincome-toolkit upload`: exit codes, messages, dry run, and a SIGKILL in the middle of a run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import polars as pl
from click.testing import CliRunner
from upload_builders import (
    assert_fincome_holds_exactly,
    make_dataset,
    settled_stats,
    stored_ids,
    with_values,
    write_export,
)

from fincome_toolkit.cli import main
from fincome_toolkit.sandbox import sandbox


def invoke(*args: str, key: str | None = None):
    """Run the CLI in-process with FINCOME_API_KEY set to `key` (unset when None)."""
    runner = CliRunner()
    return runner.invoke(main, ["upload", *args], env={"FINCOME_API_KEY": key})


def test_a_missing_key_is_exit_2_with_a_message_and_no_traceback(tmp_path):
    data = write_export(make_dataset(2), tmp_path / "data")
    result = invoke(str(data), "--base-url", "http://127.0.0.1:9", key=None)
    assert result.exit_code == 2
    assert "no Fincome API key" in result.output
    assert "FINCOME_API_KEY" in result.output
    assert "Traceback" not in result.output


def test_a_bad_base_url_is_exit_2(tmp_path):
    data = write_export(make_dataset(2), tmp_path / "data")
    result = invoke(str(data), "--base-url", "ftp://example.com", key="k")
    assert result.exit_code == 2
    assert "is not an http(s) URL" in result.output


def test_dry_run_needs_no_key_nor_network(tmp_path):
    data = write_export(make_dataset(3), tmp_path / "data")
    out = tmp_path / "dry"
    result = invoke(str(data), "--base-url", "http://127.0.0.1:9", "--dry-run", str(out))
    assert result.exit_code == 0, result.output
    assert "nothing was sent" in result.output
    assert len((out / "invoices.ndjson").read_text().splitlines()) == 9
    assert pl.read_csv(out / "plan.csv")["action"].unique().to_list() == ["send"]


def test_an_upload_then_a_rerun_that_sends_nothing(tmp_path):
    dataset = make_dataset(5)
    data = write_export(dataset, tmp_path / "data")
    journal = tmp_path / "journal.sqlite"
    with sandbox() as box:
        options = [str(data), "--base-url", box.base_url, "--journal", str(journal)]
        first = invoke(*options, key=box.api_key)
        assert first.exit_code == 0, first.output
        assert "25 records acknowledged" in first.output
        requests = settled_stats(box, at_least=25)["requests"]
        second = invoke(*options, "--results", str(tmp_path / "all.csv"), key=box.api_key)
        assert second.exit_code == 0, second.output
        assert settled_stats(box)["requests"] == requests
        assert pl.read_csv(tmp_path / "all.csv")["outcome"].unique().to_list() == ["skipped"]
        # Loaded from CSV, the records carry their file names: compare without provenance.
        assert_fincome_holds_exactly(box, dataset)
    assert box.api_key not in first.output + second.output


def test_rejected_records_give_exit_1_and_a_csv_of_what_to_fix(tmp_path):
    dataset = with_values(make_dataset(3), "customers", "C-0002", email="not-an-email")
    data = write_export(dataset, tmp_path / "data")
    with sandbox() as box:
        result = invoke(
            str(data),
            "--base-url",
            box.base_url,
            "--journal",
            str(tmp_path / "j" / "journal.sqlite"),
            key=box.api_key,
        )
    assert result.exit_code == 1, result.output
    assert "records to look at" in result.output
    written = list((tmp_path / "j").glob("upload-problems-*.csv"))
    assert len(written) == 1
    problems = pl.read_csv(written[0])
    rejected = problems.filter(pl.col("outcome") == "rejected").row(0, named=True)
    assert (rejected["record_id"], rejected["source_line"]) == ("C-0002", 4)
    assert rejected["source_file"].endswith("customers.csv")
    assert rejected["detail"].startswith("email:")
    assert problems.height == 1 + 1 + 3  # the customer, its subscription and its invoices


def test_a_wrong_key_is_exit_2_with_one_message_and_one_401(tmp_path):
    data = write_export(make_dataset(10), tmp_path / "data")
    with sandbox() as box:
        result = invoke(
            str(data),
            "--base-url",
            box.base_url,
            "--journal",
            str(tmp_path / "j.sqlite"),
            key="not-the-right-key-42",
        )
        assert settled_stats(box, at_least=1)["by_status"] == {"401": 1}
    assert result.exit_code == 2
    assert result.output.count("refused the API key") == 1
    assert "not-the-right-key-42" not in result.output
    assert "Traceback" not in result.output


def acknowledged_in(journal) -> int:
    """Records acknowledged so far, read while another process writes (WAL allows it)."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            query = "SELECT count(*) FROM records WHERE state = 'acknowledged'"
            return db.execute(query).fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_sigkill_mid_run_then_a_rerun_is_exact_without_resending(tmp_path):
    dataset = make_dataset(50, invoices_per_subscription=2)
    total = 50 + 50 + 100
    data = write_export(dataset, tmp_path / "data")
    journal = tmp_path / "journal.sqlite"
    with sandbox(latency_ms=40, duplicate_policy="conflict") as box:
        options = [str(data), "--base-url", box.base_url, "--journal", str(journal)]
        command = [sys.executable, "-c", "from fincome_toolkit.cli import main; main()"]
        env = os.environ | {"FINCOME_API_KEY": box.api_key}
        process = subprocess.Popen(
            [*command, "upload", *options, "--concurrency", "4"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while acknowledged_in(journal) < 30:
                assert process.poll() is None, "the upload ended before it could be killed"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait()
        assert process.returncode == -signal.SIGKILL
        done_before = acknowledged_in(journal)
        assert 30 <= done_before < total
        before = settled_stats(box)

        rerun = invoke(*options, "--results", str(tmp_path / "all.csv"), key=box.api_key)
        assert rerun.exit_code == 0, rerun.output
        outcomes = pl.read_csv(tmp_path / "all.csv")
        after = settled_stats(box, at_least=before["requests"] + outcomes["attempts"].sum())
        assert_fincome_holds_exactly(box, dataset)
        assert len(stored_ids(box, "invoices")) == 100

    assert outcomes.height == total
    skipped = outcomes.filter(pl.col("outcome") == "skipped")
    assert skipped.height == done_before  # nothing acknowledged was sent again
    assert skipped["attempts"].sum() == 0
    sent = outcomes.filter(pl.col("outcome") == "acknowledged")
    assert sent.height == total - done_before
    # Every request of the rerun is one of the records that were not yet acknowledged.
    assert after["requests"] - before["requests"] == sent["attempts"].sum()
    posts = sum(
        sum(after["by_route"][route].values()) - sum(before["by_route"].get(route, {}).values())
        for route in ("POST /customers", "POST /subscriptions", "POST /invoices")
    )
    assert posts == sent.height
