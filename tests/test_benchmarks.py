"""Smoke test of the benchmark harness (benchmarks/): it runs at a tiny size and its pieces agree.

No timing is asserted: the numbers belong in benchmarks/README.md, not in a test.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import datasets  # noqa: E402
import run  # noqa: E402
import tables  # noqa: E402
import upload_bench  # noqa: E402
from subset import as_data, from_data, subset_checks, toolkit_subset_codes  # noqa: E402

from fincome_toolkit.rules import RULES_BY_CODE  # noqa: E402
from fincome_toolkit.sample import generate  # noqa: E402
from fincome_toolkit.sandbox import sandbox  # noqa: E402

HAS_PEERS = all(importlib.util.find_spec(m) for m in ("pointblank", "pandas"))


def test_sizes_read_as_analysts_write_them():
    assert [datasets.parse_size(s) for s in ("2k", "100k", "1M", "10M", "2500")] == [
        2_000, 100_000, 1_000_000, 10_000_000, 2_500,
    ]  # fmt: skip
    assert datasets.size_label(10_000_000) == "10M"
    with pytest.raises(ValueError, match="cannot read the size"):
        datasets.parse_size("lots")


def test_subset_mirrors_existing_toolkit_rules():
    assert set(toolkit_subset_codes()) <= set(RULES_BY_CODE)
    checks = subset_checks()
    assert from_data(as_data(checks)) == checks
    kinds = {check.kind for check in checks}
    assert kinds == {"not_null", "unique", "in_set", "regex", "ge", "lt_column"}


def test_harness_runs_every_data_step_at_a_tiny_size(tmp_path):
    out = tmp_path / "results.json"
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Benchmarks\n\nintro\n\n<!-- results:start -->\nold\n<!-- results:end -->\n"
    )
    only = "floor,audit,metrics" + (",pointblank" if HAS_PEERS else "")
    argv = ["--sizes", "2k", "--only", only, "--out", str(out), "--data-dir", str(tmp_path)]
    assert run.main([*argv, "--readme", str(readme)]) == 0

    results = json.loads(out.read_text())["results"]
    steps = {(r["variant"], r["step"]) for r in results}
    assert ("clean", "generate") in steps and ("dirty", "audit") in steps
    assert not [r for r in results if "error" in r], [r["error"] for r in results if "error" in r]
    by_step = {(r["variant"], r["step"]): r for r in results}
    assert by_step[("clean", "floor_strings")]["detail"]["rows"]["invoices"] > 0
    assert by_step[("dirty", "audit")]["detail"]["issues"] > 0  # planted defects are found
    assert by_step[("clean", "metrics")]["detail"]["months"] > 0
    assert all(r["peak_rss_mb"] > 0 for r in results)
    text = readme.read_text()
    assert "intro" in text and "old" not in text and "| 2k | audit (dirty) |" in text

    # a second run reuses the cached data instead of generating it again
    assert run.main([*argv, "--only", "floor", "--no-readme"]) == 0
    again = json.loads(out.read_text())["results"]
    generated = [r for r in again if r["step"] == "generate"]
    assert [r["measured_at"] for r in generated] == [
        r["measured_at"] for r in results if r["step"] == "generate"
    ]


def test_upload_runs_count_every_record(tmp_path):
    dataset = generate(customers=4, subscriptions=8, invoices=60, seed=1, defects=False).dataset
    total = sum(frame.height for frame in dataset.frames().values())
    with sandbox() as served:
        measured = upload_bench.toolkit_upload(
            dataset, served.base_url, concurrency=4, journal=tmp_path / "journal.sqlite"
        )
    assert measured["records"] == total
    assert measured["outcomes"] == {"acknowledged": total}
    assert measured["lost"] == 0
    with sandbox() as served:
        sequential = upload_bench.sequential_loop(dataset, served.base_url, max_seconds=60)
    assert sequential["records"] == total and sequential["non_2xx"] == 0
    assert sum(sequential["stored"].values()) == total


def test_table_marks_missed_targets():
    entry = {
        "invoices": 10_000_000, "size": "10M", "variant": "clean", "step": "metrics",
        "seconds": 12.5, "peak_rss_mb": 900.0,
        "detail": {"mrr_seconds": 11.0, "movements_seconds": 1.5, "mrr_rows": 5, "months": 3},
    }  # fmt: skip
    table = tables.markdown_table([entry])
    assert "| 10M | metrics (clean) | 12.50 | 900 |" in table
    assert "≤ 10 s | **no** |" in table
