"""The notebooks run top to bottom, headless, on their defaults (the bundled sample, a sandbox).

Each marimo notebook runs as a script in a subprocess (`app.run()`, what `python notebook.py`
does: every cell, buttons pressed, non-zero exit on any cell error); the runner then evaluates a
few expressions on the notebook's variables so that the test checks what the cells computed, not
only that they did not crash. The Jupyter walkthrough runs in a real kernel with nbclient.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from fincome_toolkit.demo import PLANTED_FINANCE_DIFFERENCES, SAMPLE_DIR
from fincome_toolkit.sample import generate, write_export
from fincome_toolkit.sandbox import sandbox

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MARIMO_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.py"))

# Runs a marimo notebook as a script, then prints {name: eval(expression, notebook globals)}.
RUNNER = """
import importlib.util, json, sys
path, checks = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [path, *sys.argv[3:]]
spec = importlib.util.spec_from_file_location("notebook", path)
notebook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(notebook)
outputs, defs = notebook.app.run()
facts = {name: eval(expression, {}, dict(defs)) for name, expression in checks.items()}
facts["_outputs"] = "\\n".join(getattr(o, "text", None) or repr(o) for o in outputs)
print("FACTS " + json.dumps(facts, default=str))
"""


def run_marimo(
    notebook: str, checks: dict[str, str], *args: str, env: dict[str, str] | None = None
) -> dict[str, object]:
    """Run notebooks/<notebook> as a script in a subprocess (from another folder, to prove paths
    are relative to the notebook) and return the evaluated `checks`, plus `_outputs` (the text
    of every cell output) and `_console` (what the run printed)."""
    path = NOTEBOOKS / notebook
    completed = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path), json.dumps(checks), *args],
        capture_output=True,
        text=True,
        cwd=ROOT / "tests",
        timeout=600,
        env=env,
    )
    assert completed.returncode == 0, f"{notebook} failed:\n{completed.stderr[-4000:]}"
    line = next(x for x in completed.stdout.splitlines() if x.startswith("FACTS "))
    facts = json.loads(line.removeprefix("FACTS "))
    facts["_console"] = completed.stdout.replace(line, "") + completed.stderr
    return facts


def test_there_are_four_marimo_notebooks() -> None:
    names = {path.name for path in MARIMO_NOTEBOOKS}
    assert names == {"clean.py", "audit.py", "reconcile.py", "upload.py"}


def test_marimo_check_strict_passes() -> None:
    marimo = Path(sys.executable).with_name("marimo")
    completed = subprocess.run(
        [str(marimo), "check", "--strict", *map(str, MARIMO_NOTEBOOKS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_clean_notebook_prefills_the_mapping_and_lists_parse_issues() -> None:
    before = (SAMPLE_DIR / "mapping.toml").read_bytes()
    facts = run_marimo(
        "clean.py",
        {
            "toml": "toml_text",
            "issues": "dataset.parse_issues.height",
            "rows": "{k: v.height for k, v in dataset.frames().items()}",
        },
    )
    sample = tomllib.loads(before.decode("utf-8"))
    rebuilt = tomllib.loads(str(facts["toml"]))
    for frame in ("customers", "subscriptions", "invoices"):
        # every column the sample's mapping names is pre-selected in its dropdown
        assert sample[frame]["columns"].items() <= rebuilt[frame]["columns"].items()
        assert rebuilt[frame].get("constants", {}) == sample[frame].get("constants", {})
        assert rebuilt[frame]["file"] == sample[frame]["file"]
    assert rebuilt["options"] == sample["options"]
    assert facts["issues"] > 0
    assert facts["rows"]["invoices"] > 1000
    # running headless never presses "save": the sample's mapping is untouched
    assert (SAMPLE_DIR / "mapping.toml").read_bytes() == before


def test_audit_notebook_audits_fixes_and_filters() -> None:
    facts = run_marimo(
        "audit.py",
        {
            "verdict": "result.verdict",
            "errors": "result.counts['error']",
            "errors_after": "after_fixes.counts['error']",
            "changes": "fixed.changes.height",
            "rules": "sorted(v for v in rule_options.values() if v)",
            "failing": "sorted(result.issues['rule'].unique().to_list())",
        },
    )
    assert facts["verdict"] == "fail"
    assert facts["changes"] > 0
    assert facts["errors_after"] <= facts["errors"]
    assert facts["rules"] == facts["failing"]  # one dropdown entry per failing rule


def test_reconcile_notebook_compares_three_ways() -> None:
    facts = run_marimo(
        "reconcile.py",
        {
            "months": "monthly.height",
            "sources": "sources.height",
            "finance_off": "sorted(set(versus_finance.filter("
            "~versus_finance['within_tolerance'] & (versus_finance['level'] == 'total')"
            ")['month'].dt.strftime('%Y-%m').to_list()))",
            "fincome_statuses": "sorted(versus_fincome['status'].unique().to_list())",
            "fincome_invoices": "fincome.invoices.height",
        },
    )
    assert facts["months"] > 12
    assert facts["sources"] > 0
    assert facts["finance_off"] == sorted(f"{m:%Y-%m}" for m in PLANTED_FINANCE_DIFFERENCES)
    assert facts["fincome_statuses"] == ["missing"]  # held-back records only
    assert facts["fincome_invoices"] > 1000


def test_upload_notebook_sends_resumes_and_reads_back() -> None:
    facts = run_marimo(
        "upload.py",
        {
            "plan_send": "plan.to_send().height",
            "acknowledged": "result.count('acknowledged')",
            "held_back": "result.count('held_back')",
            "resumed_requests": "resumed.requests",
            "resumed_skipped": "resumed.count('skipped')",
            "target": "target.base_url",
        },
    )
    assert str(facts["target"]).startswith("http://127.0.0.1:")
    assert facts["acknowledged"] > 0 and facts["held_back"] > 0
    assert facts["acknowledged"] <= facts["plan_send"]
    assert facts["resumed_requests"] == 0
    assert facts["resumed_skipped"] == facts["acknowledged"]


def test_upload_notebook_to_an_api_url_never_shows_the_key(tmp_path: Path) -> None:
    """Target "Fincome" at a URL (here a sandbox that demands our secret key), key from the
    environment: the upload works, and the key appears in no output and nothing printed."""
    secret = "sk-live-do-not-print-0123456789"
    export = tmp_path / "export"
    write_export(generate(customers=30, seed=5, defects_per_kind=1), export)
    with sandbox(api_key=secret) as running:
        facts = run_marimo(
            "upload.py",
            {
                "acknowledged": "result.count('acknowledged')",
                "resumed": "resumed.requests",
                "journal": "str(journal_path)",
            },
            *("--data", str(export), "--target", "fincome", "--base-url", running.base_url),
            env={**os.environ, "FINCOME_API_KEY": secret},
        )
    assert facts["acknowledged"] > 0 and facts["resumed"] == 0
    assert str(facts["journal"]).startswith(str(export / ".fincome"))  # kept with the export
    assert "FINCOME_API_KEY" in str(facts["_outputs"]) and "(hidden)" in str(facts["_outputs"])
    assert secret not in str(facts["_outputs"]) + str(facts["_console"])
    journal = Path(str(facts["journal"])).read_bytes()
    assert secret.encode() not in journal


@pytest.fixture(scope="module")
def walkthrough() -> nbformat.NotebookNode:
    """notebooks/walkthrough.ipynb executed in a python3 kernel from this environment."""
    notebook = nbformat.read(NOTEBOOKS / "walkthrough.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=600,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    return notebook


def _outputs(notebook: nbformat.NotebookNode, mime: str) -> list[str]:
    return [
        str(output["data"][mime])
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if mime in output.get("data", {})
    ]


def test_walkthrough_runs_without_errors(walkthrough: nbformat.NotebookNode) -> None:
    errors = [
        output
        for cell in walkthrough.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert errors == []
    assert all(
        cell.get("execution_count") for cell in walkthrough.cells if cell.cell_type == "code"
    )


def test_walkthrough_shows_the_audit_and_the_upload(walkthrough: nbformat.NotebookNode) -> None:
    html = "\n".join(_outputs(walkthrough, "text/html"))
    assert "fincome-audit" in html and "FAIL" in html  # the AuditResult rendered itself
    assert "Upload to Fincome" in html  # the UploadResult too
    assert "resumed run: 0 requests" in "\n".join(
        output.get("text", "")
        for cell in walkthrough.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    assert "vega-embed" in html  # the altair MRR chart
