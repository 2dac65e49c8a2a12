"""The tidy stage of the report: verdict words, rule order, capped extracts with business keys.

Plain polars and strings, no rendering: report_html.py (great-tables) and report.py (files,
terminal) both build on it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from fincome_toolkit.frames import FRAME_NAMES

DEFAULT_EXTRACT_ROWS = 50

STATUS_ORDER = ("error", "warning", "info", "passed")


# Colours by status: text, background, bar. Accessible contrast on white.
PALETTE: dict[str, dict[str, str]] = {
    "error": {"fg": "#b42318", "bg": "#fef3f2", "bar": "#d92d20", "label": "Error"},
    "warning": {"fg": "#93370d", "bg": "#fffaeb", "bar": "#f79009", "label": "Warning"},
    "info": {"fg": "#175cd3", "bg": "#eff8ff", "bar": "#2e90fa", "label": "Info"},
    "passed": {"fg": "#067647", "bg": "#ecfdf3", "bar": "#17b26a", "label": "Passed"},
}


# Business keys shown next to each failing row, so an analyst can find the record in the ERP.
KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("name", "email"),
    "subscriptions": ("customer_id", "plan_id"),
    "invoices": ("customer_id", "subscription_id"),
}

EXTRACT_COLUMNS = ("line", "file", "record_id", "column", "value", "message", "frame")
ALL_KEYS = tuple(dict.fromkeys(key for keys in KEY_COLUMNS.values() for key in keys))


# Words


def count_phrase(n: int, word: str) -> str:
    """'1 error', '1,234 warnings', '3 info' (a mass noun)."""
    return f"{n:,} {word}{'' if n == 1 or word == 'info' else 's'}"


def severity_counts(result: Any) -> dict[str, int]:
    """The issue-row counts by severity, always with the three keys."""
    counts = dict(result.counts or {})
    return {severity: int(counts.get(severity, 0)) for severity in ("error", "warning", "info")}


def held_back_records(result: Any) -> int:
    """How many records carry at least one error: `AuditResult.blocked_records()`, the records
    the uploader holds back."""
    return result.blocked_records().height


def verdict_sentence(result: Any) -> str:
    """A few plain sentences on what the verdict means for the upload."""
    held = held_back_records(result)
    records = count_phrase(held, "record")
    warnings = severity_counts(result)["warning"]
    if result.verdict == "fail" and result.blocking:
        parts = [
            f"The upload is blocked until the errors are fixed: {records} with errors, to correct "
            "in the source system before exporting again. Records with errors are never sent, "
            "and the records that depend on them are held back too."
        ]
    elif held:
        parts = [
            f"{records} with errors will be held back from the upload, with the records that "
            "depend on them; everything else can be uploaded."
        ]
    else:
        parts = ["No record has an error: everything can be uploaded."]
    if warnings:
        verb = "deserves" if warnings == 1 else "deserve"
        parts.append(f"{count_phrase(warnings, 'warning')} {verb} a human look first.")
    return " ".join(parts)


def ordered_summary(summary: pl.DataFrame) -> pl.DataFrame:
    """Rules with the worst status first, then by frame (upload order) and code."""
    status_rank = pl.col("status").replace_strict(
        {s: i for i, s in enumerate(STATUS_ORDER)}, default=len(STATUS_ORDER), return_dtype=pl.Int32
    )
    frame_rank = pl.col("frame").replace_strict(
        {f: i for i, f in enumerate(FRAME_NAMES)}, default=len(FRAME_NAMES), return_dtype=pl.Int32
    )
    return summary.sort(status_rank, frame_rank, pl.col("rule"))


# Extracts


def extract_frames(result: Any, rules: list[str], *, cap: int) -> dict[str, pl.DataFrame]:
    """The first `cap` issue rows of each rule, joined to the business keys of their record."""
    issues = result.issues.filter(pl.col("rule").is_in(rules)).sort(
        "rule", "file", "line", "record_id", nulls_last=True
    )
    capped = issues.group_by("rule", maintain_order=True).head(cap)
    # The keys are joined once for all rules: one pass over each (possibly 10M-row) frame.
    keyed = _with_keys(capped, result.dataset, carry=("rule",))
    by_rule = keyed.group_by("rule", maintain_order=True)
    return {str(rule): rows.drop("rule") for (rule,), rows in by_rule}


def _with_keys(issues: pl.DataFrame, dataset: Any, *, carry: tuple[str, ...] = ()) -> pl.DataFrame:
    """Add the business keys of each issue's record: matched on its source file and line, or on
    its id when the data has no provenance (a dataset built in memory). `carry`: more columns of
    `issues` to keep."""
    rows = issues.select(*EXTRACT_COLUMNS, *carry).with_row_index("_order")
    keyed = pl.col("frame").is_in(list(KEY_COLUMNS)).fill_null(False)
    parts = [rows.filter(~keyed)] if dataset is not None else [rows]
    for frame, keys in KEY_COLUMNS.items() if dataset is not None else ():
        canonical = dataset.frame(frame).select(
            "id", "source_file", "source_line", *[pl.col(key).cast(pl.String) for key in keys]
        )
        of_frame = rows.filter(pl.col("frame") == frame)
        # Only the records the extracts cite: `unique` then runs on a few rows, not the frame.
        canonical = canonical.filter(
            pl.col("source_line").is_in(of_frame["line"].drop_nulls().implode())
            | pl.col("id").is_in(of_frame["record_id"].drop_nulls().implode())
        )
        located = pl.col("line").is_not_null()
        by_line = of_frame.filter(located).join(
            canonical.drop("id").unique(["source_file", "source_line"], keep="first"),
            left_on=["file", "line"],
            right_on=["source_file", "source_line"],
            how="left",
        )
        by_id = of_frame.filter(~located).join(
            canonical.drop("source_file", "source_line").unique("id", keep="first"),
            left_on="record_id",
            right_on="id",
            how="left",
        )
        parts += [by_line, by_id]
    # The file name is enough in an extract; the full path and its SHA-256 are in the context.
    return (
        pl.concat(parts, how="diagonal_relaxed")
        .sort("_order")
        .drop("_order")
        .with_columns(pl.col("file").str.replace(r"^.*[\\/]", ""))
    )
