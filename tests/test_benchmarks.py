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

import child  # noqa: E402
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


@pytest.fixture(scope="module")
def tiny_exports(tmp_path_factory):
    """Clean and dirty 2k-invoice exports in the harness's cache layout (generated in-process)."""
    root = tmp_path_factory.mktemp("bench-data")
    for variant in datasets.VARIANTS:
        folder = datasets.data_folder(root, 2_000, 0, variant)
        datasets.generate_export(folder, invoices=2_000, seed=0, variant=variant)
    return root


def _run_step(name: str, folder: Path, args: dict | None = None) -> dict:
    return child.STEPS[name](folder, args or {})()


def test_steps_report_what_they_measured(tiny_exports):
    clean = datasets.data_folder(tiny_exports, 2_000, 0, "clean")
    dirty = datasets.data_folder(tiny_exports, 2_000, 0, "dirty")
    assert datasets.is_ready(clean) and datasets.is_ready(dirty)
    assert _run_step("floor_infer", clean)["rows"]["invoices"] > 1_000
    as_of = {"as_of": run.AS_OF}
    assert _run_step("audit", clean, as_of)["verdict"] == "pass"
    found = _run_step("audit", dirty, as_of)
    assert found["issues"] > 0 and found["counts"]["error"] > 0  # planted defects are found
    assert _run_step("toolkit_subset", dirty, as_of)["issues"] > 0
    assert _run_step("metrics", clean)["months"] > 0
    if HAS_PEERS:
        checks = {"checks": as_data(subset_checks())}
        for peer in ("pointblank", "pandera_pandas"):
            measured = _run_step(peer, clean, checks)
            assert measured["checks"] == len(subset_checks())
            assert measured["failed_rows"] == 0  # clean data: the peers agree with the audit


def test_harness_measures_in_child_processes_and_reuses_cached_data(tiny_exports, tmp_path):
    out, readme = tmp_path / "results.json", tmp_path / "README.md"
    readme.write_text("# B\n\nintro\n\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    argv = ["--sizes", "2k", "--only", "floor", "--out", str(out), "--data-dir", str(tiny_exports)]
    assert run.main([*argv, "--readme", str(readme)]) == 0

    results = json.loads(out.read_text())["results"]
    assert {r["step"] for r in results} == {"floor_strings", "floor_infer"}  # nothing generated
    assert all(r["peak_rss_mb"] > 0 and r["seconds"] >= 0 for r in results)
    assert results[0]["detail"]["rows"]["invoices"] > 1_000
    text = readme.read_text()
    assert "intro" in text and "old" not in text and "| 2k | floor_infer (clean) |" in text


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
