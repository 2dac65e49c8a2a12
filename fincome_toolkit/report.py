"""What an audit leaves behind: an HTML report, a JSON summary, the issues CSV, failing records.

Every writer takes an `AuditResult` (see audit.py) and a path. The HTML rendering lives in
report_html.py; this module holds the machine-readable outputs, the terminal summary and
`write_report`, which writes them all into one folder for the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from rich.table import Table
from rich.text import Text

from fincome_toolkit.errors import ConfigError
from fincome_toolkit.frames import FRAME_NAMES
from fincome_toolkit.report_data import (
    DEFAULT_EXTRACT_ROWS,
    PALETTE,
    count_phrase,
    ordered_summary,
    severity_counts,
    verdict_sentence,
)
from fincome_toolkit.report_html import render_html_report, render_summary_html

__all__ = [
    "ISSUE_COLUMNS",
    "ReportFiles",
    "json_summary",
    "render_html_report",
    "render_summary_html",
    "summary_table",
    "write_failing_records",
    "write_html_report",
    "write_issues_csv",
    "write_json_summary",
    "write_report",
]

ISSUE_COLUMNS = (
    "rule",
    "severity",
    "frame",
    "record_id",
    "file",
    "line",
    "column",
    "value",
    "message",
)
JSON_RULE_KEYS = ("rule", "severity", "frame", "checked", "failed")


# ---------------------------------------------------------------------------------------------
# HTML


def write_html_report(
    result: Any, path: str | Path, *, extract_rows: int = DEFAULT_EXTRACT_ROWS
) -> Path:
    """Write the standalone HTML report (opens offline, data escaped) and return its path."""
    html = render_html_report(result, extract_rows=extract_rows)
    return _write(path, lambda target: target.write_text(html, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# JSON summary


def json_summary(result: Any) -> dict[str, Any]:
    """`{"verdict", "counts": {error, warning, info}, "rules": [{rule, severity, frame, checked,
    failed}]}`: the shape CI jobs and scripts read. Rules keep the order of `result.summary`."""
    rules = result.summary.select(JSON_RULE_KEYS).with_columns(
        pl.col("checked", "failed").cast(pl.Int64)
    )
    return {
        "verdict": str(result.verdict),
        "counts": severity_counts(result),
        "rules": rules.to_dicts(),
    }


def write_json_summary(result: Any, path: str | Path) -> Path:
    """Write `json_summary(result)` as indented UTF-8 JSON and return the path."""
    text = json.dumps(json_summary(result), indent=2, ensure_ascii=False) + "\n"
    return _write(path, lambda target: target.write_text(text, encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# CSV outputs


def write_issues_csv(result: Any, path: str | Path) -> Path:
    """Write every issue row with exactly the columns `ISSUE_COLUMNS` and return the path."""
    issues = result.issues.select(ISSUE_COLUMNS)
    return _write(path, lambda target: issues.write_csv(target))


def write_failing_records(result: Any, out_dir: str | Path) -> list[Path]:
    """Write `failing_<frame>.csv` per frame: each failing source record once, as loaded, with its
    file, line and the rules and messages that hit it, ready to be fixed in the ERP.

    A frame without failing records gets a header-only file, so that a file left by an earlier
    run never passes for the current state.
    """
    folder = Path(out_dir)
    paths = []
    for frame in FRAME_NAMES:
        records = csv_ready(result.failing_records(frame))
        target = folder / f"failing_{frame}.csv"
        paths.append(_write(target, lambda t, records=records: records.write_csv(t)))
    return paths


def csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists of rule codes or messages, structs) as text, since CSV is flat."""
    converted = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.List | pl.Array):
            converted.append(pl.col(name).cast(pl.List(pl.String)).list.join("; "))
        elif isinstance(dtype, pl.Struct):
            converted.append(pl.col(name).struct.json_encode())
    return frame.with_columns(converted) if converted else frame


# ---------------------------------------------------------------------------------------------
# Everything at once


@dataclass(frozen=True)
class ReportFiles:
    """The files `write_report` wrote."""

    html: Path
    json: Path
    issues_csv: Path
    failing_records: tuple[Path, ...]

    def all(self) -> list[Path]:
        """Every written path, HTML first."""
        return [self.html, self.json, self.issues_csv, *self.failing_records]


def write_report(
    result: Any, out_dir: str | Path, *, extract_rows: int = DEFAULT_EXTRACT_ROWS
) -> ReportFiles:
    """Write report.html, summary.json, issues.csv and failing_<frame>.csv into `out_dir`."""
    folder = Path(out_dir)
    return ReportFiles(
        html=write_html_report(result, folder / "report.html", extract_rows=extract_rows),
        json=write_json_summary(result, folder / "summary.json"),
        issues_csv=write_issues_csv(result, folder / "issues.csv"),
        failing_records=tuple(write_failing_records(result, folder)),
    )


# ---------------------------------------------------------------------------------------------
# Terminal


def summary_table(result: Any) -> Table:
    """A rich table for the terminal: the verdict, one row per failed rule, the passed count.

    Cells are `Text` objects so that brackets in rule titles are never read as rich markup.
    """
    counts = severity_counts(result)
    colour = "bold red" if result.verdict == "fail" else "bold green"
    title = Text.assemble(
        (str(result.verdict).upper(), colour),
        " — " + ", ".join(count_phrase(n, s) for s, n in counts.items()),
    )
    summary = ordered_summary(result.summary)
    failing = summary.filter(pl.col("status") != "passed")
    passed = summary.height - failing.height
    table = Table(
        title=title,
        caption=f"{count_phrase(passed, 'rule')} passed.\n{verdict_sentence(result)}",
        caption_justify="left",
        title_justify="left",
    )
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Frame", no_wrap=True)
    table.add_column("Failed / checked", justify="right", no_wrap=True)
    table.add_column("What is wrong")
    styles = {"error": "red", "warning": "yellow", "info": "blue"}
    for row in failing.iter_rows(named=True):
        status = str(row["status"])
        table.add_row(
            Text(PALETTE.get(status, PALETTE["error"])["label"], style=styles.get(status, "red")),
            Text(str(row["rule"]), style="bold"),
            Text(str(row["frame"] or "")),
            Text(f"{int(row['failed'] or 0):,} / {int(row['checked'] or 0):,}"),
            Text(str(row["title"] or "")),
        )
    return table


# ---------------------------------------------------------------------------------------------


def _write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Create the parent folder, write, and turn an OS failure into an analyst-facing error."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
    except OSError as error:
        raise ConfigError(
            f"cannot write the report file ({error.strerror or error})",
            where=str(target),
            fix="choose an output folder you can write to, with free space",
        ) from error
    return target
