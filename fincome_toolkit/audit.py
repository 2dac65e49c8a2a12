"""The audit engine: runs the pandera schemas and every rule, applies thresholds, gives a verdict.

The audit only looks: it never changes a value (fixes are a separate, explicit step, fixes.py).
Every issue row points at one source record (frame, id, file, line) and says what is wrong with
which value; the summary has one row per rule, passed rules included, so a clean bill of health
is as explicit as a failure.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from fincome_toolkit import frames
from fincome_toolkit.audit_settings import AuditSettings, Thresholds, parse_as_of
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.rule_base import ROW, SEVERITIES, Rule, fmt
from fincome_toolkit.rule_context import SUB_ROW, RuleContext
from fincome_toolkit.rules import PARSE_001, RULES, RULES_BY_CODE
from fincome_toolkit.schemas import ISSUE_SCHEMA, require_canonical, schema_issues

ISSUE_COLUMNS = tuple(ISSUE_SCHEMA)
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "rule": pl.String(),
    "severity": pl.String(),
    "frame": pl.String(),
    "title": pl.String(),
    "why": pl.String(),
    "fix": pl.String(),
    "checked": pl.Int64(),
    "failed": pl.Int64(),
    "failed_fraction": pl.Float64(),
    "status": pl.String(),
}
# The engine's own issue rows: the public columns plus the judged row and the counted unit.
_FOUND_SCHEMA = ISSUE_SCHEMA | {ROW: pl.UInt32(), "unit": pl.String()}
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


@dataclass(frozen=True, repr=False)
class AuditResult:
    """What the audit found. `issues` and `summary` are polars frames (see CONTRIBUTING.md)."""

    issues: pl.DataFrame
    summary: pl.DataFrame
    verdict: str  # "pass" when no error-severity issue, else "fail"
    blocking: bool  # True when the errors block the upload as a whole
    counts: dict[str, int]  # issue rows per severity
    context: dict[str, Any]  # files with SHA-256, rows per frame, version, run time, as_of
    dataset: frames.Dataset = field(compare=False)
    record_issues: pl.DataFrame = field(compare=False)  # frame, _row, rule, severity, message

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {severity}" for severity, n in self.counts.items())
        return f"AuditResult(verdict={self.verdict!r}, {counts})"

    def blocked_records(self) -> pl.DataFrame:
        """`frame, record_id` of the records with an error-severity issue (held back on upload)."""
        return (
            self.issues.filter(pl.col("severity") == "error", pl.col("record_id").is_not_null())
            .select("frame", "record_id")
            .unique(maintain_order=True)
        )

    def failing_records(self, frame: str) -> pl.DataFrame:
        """The source records of `frame` with at least one issue, as loaded, each once, with
        `rules` (codes), `worst_severity` and `messages`, in file order: ready to fix in the ERP."""
        records = self.dataset.frame(frame).with_row_index(ROW)
        per_row = (
            self.record_issues.filter(pl.col("frame") == frame)
            .group_by(ROW)
            .agg(
                rules=pl.col("rule").unique().sort(),
                worst_severity=pl.col("severity")
                .replace_strict(_SEVERITY_RANK, return_dtype=pl.Int8)
                .max()
                .replace_strict(dict(enumerate(SEVERITIES)), return_dtype=pl.String),
                messages=fmt("{}: {}", "rule", "message"),
            )
        )
        return records.join(per_row, on=ROW, how="inner").sort(ROW).drop(ROW)

    def _repr_html_(self) -> str:
        from fincome_toolkit.report import render_summary_html  # report.py imports this module

        return render_summary_html(self)

    def _mime_(self) -> tuple[str, str]:
        return "text/html", self._repr_html_()


def audit(
    dataset: frames.Dataset,
    *,
    as_of: dt.date | str | None = None,
    thresholds: Mapping[str, Thresholds] | None = None,
    rules: Iterable[str | Rule] | None = None,
    settings: AuditSettings | None = None,
) -> AuditResult:
    """Audit `dataset`: pandera schemas, every rule of the catalog and the loader's parse issues.

    `as_of` (default: settings, else today) is the day "future" and "status contradicting the
    dates" are judged at; `thresholds` per rule code override those of `settings`; `rules` limits
    the run to some rule codes (default: all but `settings.skip`).
    """
    settings = settings or AuditSettings()
    audit_date = parse_as_of(as_of) or settings.as_of or dt.date.today()
    limits = {**settings.thresholds, **(thresholds or {})}
    selected = _select_rules(rules, skip=settings.skip)
    for name, frame in dataset.frames().items():
        require_canonical(name, frame)

    started = time.perf_counter()
    ctx = RuleContext.from_dataset(dataset, as_of=audit_date, options=settings.options)
    timings: dict[str, float] = {}
    found = _run_schemas(ctx, selected, timings) + _run_rules(ctx, selected, timings)
    if PARSE_001 in selected:
        parse = _parse_issues(ctx, dataset.parse_issues)
        found.append(parse)
        found = [_without_parsed_nulls(part, parse) for part in found]
    issues = pl.concat(found, how="vertical") if found else pl.DataFrame(schema=_FOUND_SCHEMA)

    summary = _summary(ctx, selected, issues, limits)
    status = dict(summary.select("rule", "status").iter_rows())
    issues = _with_severity(issues, status)
    verdict = "fail" if "error" in status.values() else "pass"
    counts = {s: int(issues.filter(pl.col("severity") == s).height) for s in reversed(SEVERITIES)}
    return AuditResult(
        issues=issues.select(ISSUE_COLUMNS),
        summary=summary,
        verdict=verdict,
        blocking=verdict == "fail" and settings.block_on_error,
        counts=counts,
        context=_context(dataset, audit_date, time.perf_counter() - started, timings),
        dataset=dataset,
        record_issues=issues.filter(pl.col(ROW).is_not_null()).select(
            "frame", ROW, "rule", "severity", "message"
        ),
    )


def _select_rules(chosen: Iterable[str | Rule] | None, *, skip: Iterable[str]) -> list[Rule]:
    if chosen is None:
        picked = list(RULES)
    else:
        picked = []
        for item in chosen:
            if isinstance(item, Rule):
                picked.append(item)
            elif item in RULES_BY_CODE:
                picked.append(RULES_BY_CODE[item])
            else:
                raise ConfigError(
                    f"unknown rule {item!r}", fix=f"choose among {', '.join(RULES_BY_CODE)}"
                )
    skipped = set(skip)
    return [r for r in picked if r.code not in skipped]


def _records_at(ctx: RuleContext, frame: str, rows: pl.Series) -> dict[str, pl.Expr]:
    """The id, file and line of the given rows of `frame` (a gather by row index, no join)."""
    source = ctx.frame(frame)
    return {
        "record_id": pl.lit(source["id"].gather(rows)),
        "file": pl.lit(source[frames.SOURCE_FILE].gather(rows)),
        "line": pl.lit(source[frames.SOURCE_LINE].gather(rows)),
    }


def _run_schemas(ctx: RuleContext, selected: list[Rule], timings: dict[str, float]) -> list:
    codes = {r.code for r in selected if r.check is None and r is not PARSE_001}
    parts = []
    for name in frames.FRAME_NAMES:
        if not any(RULES_BY_CODE[c].frame == name for c in codes):
            continue
        started = time.perf_counter()
        issues = schema_issues(name, ctx.frame(name)).filter(pl.col("rule").is_in(list(codes)))
        timings[f"schema:{name}"] = time.perf_counter() - started
        parts.append(issues.with_columns(unit=pl.lit(None, pl.String)).select(list(_FOUND_SCHEMA)))
    return parts


def _run_rules(ctx: RuleContext, selected: list[Rule], timings: dict[str, float]) -> list:
    parts = []
    for rule in selected:
        if rule.check is None:
            continue
        started = time.perf_counter()
        offending = rule.check(ctx).lazy().collect()
        timings[rule.code] = time.perf_counter() - started
        issues = offending.with_columns(
            **_records_at(ctx, rule.frame, offending[ROW]),
            rule=pl.lit(rule.code),
            severity=pl.lit(None, pl.String),
            frame=pl.lit(rule.frame),
        )
        parts.append(issues.select([pl.col(c).cast(t) for c, t in _FOUND_SCHEMA.items()]))
    return parts


def _parse_issues(ctx: RuleContext, parse_issues: pl.DataFrame) -> pl.DataFrame:
    """The loader's parse issues as PARSE-001 rows, tied to their record's row when it exists
    (by source file and line, or by id when the issue carries no line)."""
    parts = []
    for (name,), own in parse_issues.group_by("frame", maintain_order=True):
        parts.append(own.with_columns(pl.lit(None, pl.UInt32).alias(ROW)))
        if name not in frames.FIELDS:
            continue
        source = ctx.frame(str(name))
        by_line = (
            source.select(ROW, file=pl.col(frames.SOURCE_FILE), line=pl.col(frames.SOURCE_LINE))
            .join(own.select("file", "line").unique(), on=["file", "line"], how="semi")
            .unique(["file", "line"], keep="first")
        )
        by_id = (
            source.select(ROW, record_id=pl.col("id"))
            .join(own.select("record_id").unique(), on="record_id", how="semi")
            .unique("record_id", keep="first")
        )
        parts[-1] = (
            own.join(by_line, on=["file", "line"], how="left")
            .join(by_id.rename({ROW: "_by_id"}), on="record_id", how="left")
            .with_columns(
                pl.when(pl.col("line").is_null())
                .then(pl.col("_by_id"))
                .otherwise(pl.col(ROW))
                .alias(ROW)
            )
        )
    if not parts:
        return pl.DataFrame(schema=_FOUND_SCHEMA)
    return (
        pl.concat(parts, how="diagonal")
        .with_columns(
            rule=pl.lit(PARSE_001.code),
            severity=pl.lit(None, pl.String),
            value=pl.col("raw_value"),
            message=pl.col("reason"),
            unit=pl.lit(None, pl.String),
        )
        .select([pl.col(c).cast(t) for c, t in _FOUND_SCHEMA.items()])
    )


def _without_parsed_nulls(part: pl.DataFrame, parse: pl.DataFrame) -> pl.DataFrame:
    """Drop "required field is empty" issues on values the loader already reported unreadable:
    one issue per problem, the one that shows the raw text."""
    if part is parse or part.is_empty():
        return part
    required = pl.col("rule").str.ends_with("-001")
    reported = parse.select("frame", ROW, "column").drop_nulls()
    duplicates = part.filter(required).join(reported, on=["frame", ROW, "column"], how="semi")
    return part.join(duplicates, on=["rule", "frame", ROW, "column"], how="anti", nulls_equal=True)


def _checked(ctx: RuleContext, rule: Rule) -> int:
    if rule is PARSE_001:
        return sum(ctx.frame(name).height for name in frames.FRAME_NAMES)
    if rule.counts_rows:
        return ctx.frame(rule.frame).height
    # period-sequence rules count the subscriptions that have a sequence of periods
    return ctx.periods[SUB_ROW].n_unique()


def _failed(rule: Rule, issues: pl.DataFrame) -> int:
    if rule is PARSE_001:
        return issues.select("frame", "file", "line", "record_id").unique().height
    if rule.counts_rows:
        return issues[ROW].n_unique()
    return issues["unit"].n_unique()


def _summary(
    ctx: RuleContext, selected: list[Rule], issues: pl.DataFrame, limits: Mapping[str, Thresholds]
) -> pl.DataFrame:
    by_rule = dict(issues.partition_by("rule", as_dict=True, include_key=True).items())
    rows = []
    for rule in selected:
        own = by_rule.get((rule.code,), issues.clear())
        checked, failed = _checked(ctx, rule), _failed(rule, own)
        threshold = limits.get(rule.code, Thresholds())
        rows.append(
            {
                "rule": rule.code,
                "severity": rule.severity,
                "frame": rule.frame,
                "title": rule.title,
                "why": rule.why,
                "fix": rule.fix,
                "checked": checked,
                "failed": failed,
                "failed_fraction": failed / checked if checked else 0.0,
                "status": threshold.severity(rule.severity, failed=failed, checked=checked),
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def _with_severity(issues: pl.DataFrame, status: dict[str, str]) -> pl.DataFrame:
    frame_rank = pl.col("frame").replace_strict(
        {name: i for i, name in enumerate(frames.FRAME_NAMES)}, default=9, return_dtype=pl.Int8
    )
    return issues.with_columns(
        severity=pl.col("rule").replace_strict(status, return_dtype=pl.String)
    ).sort(frame_rank, "file", "line", "rule", nulls_last=True, maintain_order=True)


def _context(
    dataset: frames.Dataset, as_of: dt.date, seconds: float, timings: dict[str, float]
) -> dict[str, Any]:
    from fincome_toolkit import __version__

    return {
        "version": __version__,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "as_of": as_of.isoformat(),
        "duration_seconds": round(seconds, 3),
        "rows": {name: frame.height for name, frame in dataset.frames().items()},
        "files": [
            {
                "frame": source.frame,
                "path": str(source.path),
                "format": source.format,
                "rows": source.rows,
                "sha256": source.sha256,
                "encoding": source.encoding,
                "delimiter": source.delimiter,
            }
            for source in dataset.sources
        ],
        "rule_seconds": {code: round(s, 4) for code, s in timings.items()},
    }
