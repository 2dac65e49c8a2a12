"""The one-command demo: the whole workflow on the bundled sample, against a local sandbox.

`run_demo(out_dir)` (CLI: `fincome-toolkit demo --out DIR`) does what an analyst does with a
real export, step by step, and writes every output under `out_dir`:

1. clean: load the export with its column mapping → canonical Parquet + `parse_issues.csv`;
2. audit: schemas and rules → HTML report, JSON summary, issues CSV, failing records;
3. fix: the safe mechanical fixes with their change log, then the audit of the fixed copy;
4. upload to a sandbox started on loopback *with faults on* (transient errors, lost answers, a
   rate limit), so retries and exactly-once delivery are exercised; records with audit errors are
   held back, by design. A second run resumes from the journal and sends nothing;
5. read back what the sandbox holds and reconcile: invoices vs subscriptions, our MRR vs the
   finance file, our records vs Fincome's;
6. metrics: MRR per customer and month, the MRR bridge, rates and cohorts, as CSV.

The sample is dirty on purpose: held-back and rejected records are the expected outcome, not a
failure. `DemoSummary.ok` is False only when the workflow itself breaks: a record unaccounted
for, a record left without an answer, or a resumed run that sends again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl

from fincome_toolkit.audit import AuditResult, audit
from fincome_toolkit.bridge import movements
from fincome_toolkit.client import pull_sync
from fincome_toolkit.fixes import REMOVED, apply_fixes
from fincome_toolkit.frames import Dataset
from fincome_toolkit.loading import load_dataset, write_clean
from fincome_toolkit.metrics import MrrOptions, mrr_by_customer
from fincome_toolkit.rates import cohorts, monthly_rates
from fincome_toolkit.reconcile import (
    load_finance_file,
    reconcile_finance,
    reconcile_fincome,
    reconcile_sources,
)
from fincome_toolkit.report import write_report
from fincome_toolkit.retry import RetryPolicy
from fincome_toolkit.sample import AS_OF
from fincome_toolkit.sandbox import RunningSandbox, SandboxSettings, sandbox
from fincome_toolkit.upload import run_upload
from fincome_toolkit.upload_plan import dry_run
from fincome_toolkit.upload_progress import Progress
from fincome_toolkit.upload_result import UploadResult

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_data"
FINANCE_FILE = "finance_mrr.csv"  # finance's own monthly MRR file, when the export folder has one
FINANCE_CURRENCY = "EUR"  # its scope: one currency, compared with our MRR in that currency
# What the bundled finance file (made by `write_finance_sample`) says differently from the
# sample's own MRR, so that the reconciliation has something to find.
PLANTED_FINANCE_DIFFERENCES: dict[date, dict[str, Decimal]] = {
    # an upsell finance booked that the export does not show
    date(2026, 3, 1): {"mrr": Decimal("1250.00"), "expansion": Decimal("1250.00")},
    # a churn finance recorded in July that the export shows later
    date(2026, 7, 1): {"mrr": Decimal("-480.00"), "churn": Decimal("480.00")},
}
FINANCE_MONTHS = (date(2025, 11, 1), date(2026, 10, 1))  # the year finance's file covers
FINANCE_COLUMNS = ("mrr", "new", "expansion", "contraction", "churn")

# The faults a real API shows, on by default so that the demo proves the upload survives them.
DEMO_FAULTS = SandboxSettings(fail_rate=0.1, drop_rate=0.05, rate_limit=300.0, seed=7)
# Short waits between retries: the sandbox recovers at once, and the demo should be quick.
DEMO_RETRY = RetryPolicy(base_delay=0.05, max_delay=1.0, seed=7)

PROBLEMS_LABEL = "records held back or rejected (CSV)"
PROBLEMS_SHOWN = 6  # held-back and rejected records listed in the closing report
NOTEBOOK_HINTS = (
    "./dev run marimo edit notebooks/clean.py      # column mapping and parse issues",
    "./dev run marimo edit notebooks/audit.py      # the audit, rule by rule, and the fixes",
    "./dev run marimo edit notebooks/reconcile.py  # MRR, movements, reconciliation",
    "./dev run marimo edit notebooks/upload.py     # target, dry run, upload, resume",
    "notebooks/walkthrough.ipynb                   # the same calls in Jupyter",
)


@dataclass(frozen=True)
class UploadCounts:
    """How many records of one upload run ended in each outcome, and what the run cost."""

    acknowledged: int
    skipped: int
    held_back: int
    rejected: int
    conflict: int
    pending: int
    requests: int
    seconds: float

    @classmethod
    def of(cls, result: UploadResult) -> UploadCounts:
        """The counts of one upload run."""
        outcomes = ("acknowledged", "skipped", "held_back", "rejected", "conflict", "pending")
        numbers = {name: result.count(name) for name in outcomes}
        return cls(requests=result.requests, seconds=round(result.seconds, 2), **numbers)

    @property
    def records(self) -> int:
        """Records with an outcome in this run."""
        return (
            self.acknowledged
            + self.skipped
            + self.held_back
            + self.rejected
            + self.conflict
            + self.pending
        )


@dataclass(frozen=True)
class DemoSummary:
    """What the demo did: rows, audit verdict, fixes, upload outcomes and every output file."""

    out_dir: Path
    loaded: int  # rows read from the export, all frames
    rows: dict[str, int]  # rows per frame after the fixes (what the upload saw)
    parse_issues: int
    verdict: str
    issue_counts: dict[str, int]
    fixes: int  # changes in the fix log
    duplicates_removed: int  # exact duplicate rows removed by the fixes (logged, not lost)
    upload: UploadCounts
    resume: UploadCounts
    sandbox_requests: dict[str, int]  # requests the sandbox served, by HTTP status
    fincome_differences: dict[str, int]  # reconcile_fincome rows by status
    finance_months_off: int  # months whose total MRR differs from the finance file
    problems: tuple[str, ...] = ()  # the first records held back or rejected, one line each
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def accounted_for(self) -> int:
        """Loaded rows with a known fate: an upload outcome, or removed as an exact duplicate."""
        return self.upload.records + self.duplicates_removed

    @property
    def ok(self) -> bool:
        """True when the workflow ran as designed: every row accounted for, and the resumed run
        sent only what the first run left without an answer (usually nothing), leaving nothing
        pending."""
        return (
            self.accounted_for == self.loaded
            and self.resume.pending == 0
            and self.resume.acknowledged == self.upload.pending
        )

    def report_lines(self) -> list[str]:
        """The closing report the CLI prints: what happened, where each output is, what next."""
        up = self.upload
        rows = ", ".join(f"{n:,} {name}" for name, n in self.rows.items())
        issues = ", ".join(f"{n:,} {severity}" for severity, n in self.issue_counts.items())
        lines = [
            "",
            f"Loaded {self.loaded:,} rows ({self.parse_issues:,} values could not be parsed and "
            "are listed with file and line).",
            f"Audit verdict: {self.verdict.upper()} ({issues}).",
            f"Safe fixes: {self.fixes:,} changes, {self.duplicates_removed:,} exact duplicate "
            f"rows removed; uploaded {rows}.",
            f"Upload to the sandbox (faults on): {up.acknowledged:,} acknowledged, "
            f"{up.held_back:,} held back, {up.rejected:,} rejected, {up.conflict:,} in conflict, "
            f"{up.pending:,} without an answer; {up.requests:,} requests in {up.seconds:.1f} s.",
            *[f"    {line}" for line in self.problems],
            f"    ... each one with its reason in {self.outputs.get(PROBLEMS_LABEL)}"
            if self.problems
            else "    (no record held back or rejected)",
            f"Every row accounted for: {self.accounted_for:,} of {self.loaded:,}.",
            f"Resumed run: {self.resume.requests} requests, {self.resume.skipped:,} records "
            "already in Fincome.",
            f"The sandbox served: {_counts_text(self.sandbox_requests, 'HTTP ')}.",
            "Fincome vs our records: "
            f"{_counts_text(self.fincome_differences) or 'identical'} "
            "(records held back or rejected are 'missing' by design).",
            f"Finance file vs our MRR: {self.finance_months_off} month(s) differ.",
            "",
            "The sample is dirty on purpose: held-back and rejected records are expected; each "
            "is listed with its reason in the files below.",
            "",
            f"Outputs (under {self.out_dir}):",
        ]
        width = max((len(label) for label in self.outputs), default=0)
        lines += [f"  {label:<{width}}  {path}" for label, path in self.outputs.items()]
        lines += ["", "Open the notebooks (each runs on the sample and a sandbox by default):"]
        lines += [f"  {hint}" for hint in NOTEBOOK_HINTS]
        return lines


def _counts_text(counts: dict[str, int], prefix: str = "") -> str:
    return ", ".join(f"{n:,} × {prefix}{name}" for name, n in counts.items())


class _Steps:
    """Times each step and tells the caller which one is running."""

    def __init__(self, say: Callable[[str], None] | None) -> None:
        self.say = say or (lambda _line: None)
        self.seconds: dict[str, float] = {}
        self._name: str | None = None
        self._started = 0.0

    def start(self, name: str, line: str) -> None:
        self.stop()
        self._name, self._started = name, time.perf_counter()
        self.say(line)

    def stop(self) -> None:
        if self._name is not None:
            self.seconds[self._name] = round(time.perf_counter() - self._started, 2)
            self._name = None


def load_export(data_dir: Path | str) -> Dataset:
    """Load an export folder with the `mapping.toml` it holds (none: canonical headers)."""
    folder = Path(data_dir)
    mapping = folder / "mapping.toml"
    return load_dataset(folder, mapping=mapping if mapping.is_file() else None)


def _write_audit(result: AuditResult, out_dir: Path, outputs: dict[str, Path], key: str) -> None:
    files = write_report(result, out_dir)
    outputs[f"{key} report (HTML)"] = files.html
    outputs[f"{key} summary (JSON)"] = files.json
    outputs[f"{key} issues (CSV)"] = files.issues_csv


def _send(
    dataset: Dataset,
    checked: AuditResult,
    running: RunningSandbox,
    journal: Path,
    progress: Progress | None,
) -> UploadResult:
    return run_upload(
        dataset,
        settings=running.contract(),
        api_key=running.api_key,
        journal=journal,
        audit=checked,
        retry=DEMO_RETRY,
        progress=progress,
    )


def finance_sample(mrr: pl.DataFrame) -> pl.DataFrame:
    """Finance's file for the sample: our monthly MRR and movements in `FINANCE_CURRENCY` over
    `FINANCE_MONTHS`, with `PLANTED_FINANCE_DIFFERENCES` added (`month` as YYYY-MM)."""
    first, last = FINANCE_MONTHS
    monthly = movements(mrr.filter(pl.col("currency") == FINANCE_CURRENCY)).filter(
        pl.col("month").is_between(first, last)
    )
    frame = monthly.select("month", *FINANCE_COLUMNS[1:], mrr=pl.col("end_mrr"))
    for month, changes in PLANTED_FINANCE_DIFFERENCES.items():
        frame = frame.with_columns(
            pl.when(pl.col("month") == month)
            .then(pl.col(name) + pl.lit(amount).cast(pl.Decimal(18, 2)))
            .otherwise(pl.col(name))
            .cast(pl.Decimal(18, 2))
            .alias(name)
            for name, amount in changes.items()
        )
    month_text = pl.col("month").dt.strftime("%Y-%m")
    return frame.select(month_text, *FINANCE_COLUMNS)


def write_finance_sample(data_dir: Path | str = SAMPLE_DIR) -> Path:
    """(Re)write `finance_mrr.csv` of the sample from its MRR after the safe fixes."""
    path = Path(data_dir) / FINANCE_FILE
    finance_sample(mrr_by_customer(apply_fixes(load_export(data_dir)).dataset)).write_csv(path)
    return path


def _problem_lines(result: UploadResult) -> tuple[str, ...]:
    """The first records held back or rejected, customers first, as short readable lines."""
    rank = {"customers": 0, "subscriptions": 1, "invoices": 2}
    first = (
        result.problems()
        .with_columns(_rank=pl.col("entity").replace_strict(rank, default=3))
        .sort("_rank", "source_file", "source_line", nulls_last=True)
        .head(PROBLEMS_SHOWN)
    )
    return tuple(
        f"{row['entity']} {row['record_id']} ({row['outcome']}, {row['source_file']} line "
        f"{row['source_line']}): {_cut(row['detail'] or '', 110)}"
        for row in first.iter_rows(named=True)
    )


def _month_before(day: date) -> date:
    """The first day of the month before `day`'s month."""
    return date(day.year - (day.month == 1), (day.month - 2) % 12 + 1, 1)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _finance_months_off(mrr: pl.DataFrame, finance_path: Path, out: Path) -> int:
    """Reconcile our MRR with finance's file; write the comparison; count months that differ."""
    finance, measure = load_finance_file(finance_path)
    ours = mrr.filter(pl.col("currency") == FINANCE_CURRENCY)
    compared = reconcile_finance(ours, finance, measure=measure)
    compared.write_csv(out)
    off = compared.filter(pl.col("level") == "total", ~pl.col("within_tolerance"))
    return off.get_column("month").n_unique()


def run_demo(
    out_dir: Path | str,
    *,
    data_dir: Path | str = SAMPLE_DIR,
    as_of: date | None = None,
    faults: SandboxSettings = DEMO_FAULTS,
    progress: Progress | None = None,
    say: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Run the whole workflow on `data_dir` (the bundled sample) and write it all to `out_dir`.

    `as_of` is the audit date (default: the sample's fixed date for the bundled sample, else
    today); `faults` are the sandbox settings (its `db` is placed under `out_dir`); `progress`
    shows the upload; `say` receives one line per step.
    """
    out, folder = Path(out_dir), Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    if as_of is None and folder.resolve() == SAMPLE_DIR:
        as_of = AS_OF
    outputs: dict[str, Path] = {}
    steps = _Steps(say)

    steps.start("clean", f"1/6 Loading and cleaning the export in {folder} ...")
    loaded = load_export(folder)
    written = write_clean(loaded, out / "clean")
    outputs["canonical frames (Parquet)"] = out / "clean"
    outputs["parse issues (CSV)"] = written["parse_issues"]

    steps.start("audit", "2/6 Auditing ...")
    first_audit = audit(loaded, as_of=as_of)
    _write_audit(first_audit, out / "audit", outputs, "audit")

    steps.start("fixes", "3/6 Applying the safe fixes, auditing the fixed copy ...")
    fixed = apply_fixes(loaded)
    outputs["fix change log (CSV)"] = out / "fixes" / "changes.csv"
    outputs["fix change log (CSV)"].parent.mkdir(parents=True, exist_ok=True)
    fixed.changes.write_csv(outputs["fix change log (CSV)"])
    dataset = fixed.dataset
    checked = audit(dataset, as_of=as_of)
    _write_audit(checked, out / "audit_after_fixes", outputs, "audit after fixes")

    steps.start("upload", "4/6 Uploading to a local sandbox with faults on ...")
    dry_run(dataset, out / "upload" / "dry_run", audit=checked)
    outputs["dry run: payloads and plan"] = out / "upload" / "dry_run"
    journal = out / "upload" / "journal.sqlite"
    (out / "sandbox").mkdir(parents=True, exist_ok=True)
    with sandbox(dataclasses.replace(faults, db=out / "sandbox" / "sandbox.sqlite")) as running:
        result = _send(dataset, checked, running, journal, progress)
        steps.say("    resuming from the journal: nothing should be sent again ...")
        resumed = _send(dataset, checked, running, journal, None)
        steps.start("read back", "5/6 Reading back what the sandbox holds, reconciling ...")
        fincome = pull_sync(running.contract(), api_key=running.api_key)
        served = running.stats().get("by_status", {})
    outputs["upload outcome per record (CSV)"] = result.write_csv(
        out / "upload" / "results.csv", problems_only=False
    )
    outputs[PROBLEMS_LABEL] = result.write_csv(out / "upload" / "problems.csv")
    outputs["upload journal (SQLite)"] = journal

    steps.start("reconcile", "    reconciling ...")
    folder_out = out / "reconcile"
    folder_out.mkdir(parents=True, exist_ok=True)
    versus_fincome = reconcile_fincome(dataset, fincome)
    versus_fincome.write_csv(folder_out / "vs_fincome.csv")
    reconcile_sources(dataset).write_csv(folder_out / "invoices_vs_subscriptions.csv")
    outputs["invoices vs subscriptions (CSV)"] = folder_out / "invoices_vs_subscriptions.csv"
    outputs["our records vs Fincome (CSV)"] = folder_out / "vs_fincome.csv"
    # MRR up to the last whole month before the audit date: later months are not billed yet.
    until = _month_before(as_of) if as_of else None
    mrr = mrr_by_customer(dataset, options=MrrOptions(until=until))
    finance_months_off = 0
    if (folder / FINANCE_FILE).is_file():
        outputs["our MRR vs finance (CSV)"] = folder_out / "vs_finance.csv"
        finance_months_off = _finance_months_off(
            mrr, folder / FINANCE_FILE, outputs["our MRR vs finance (CSV)"]
        )

    steps.start("metrics", "6/6 Computing the metrics ...")
    metrics = out / "metrics"
    metrics.mkdir(parents=True, exist_ok=True)
    monthly = movements(mrr)
    mrr.write_csv(metrics / "mrr_by_customer.csv")
    monthly.write_csv(metrics / "movements.csv")
    monthly_rates(monthly).write_csv(metrics / "rates.csv")
    cohorts(mrr).write_csv(metrics / "cohorts.csv")
    outputs["metrics: MRR, movements, rates, cohorts (CSV)"] = metrics
    steps.stop()

    differences = versus_fincome.group_by("status").len().sort("status").iter_rows()
    return DemoSummary(
        out_dir=out,
        loaded=sum(frame.height for frame in loaded.frames().values()),
        rows={name: frame.height for name, frame in dataset.frames().items()},
        parse_issues=loaded.parse_issues.height,
        verdict=first_audit.verdict,
        issue_counts=dict(first_audit.counts),
        fixes=fixed.changes.height,
        duplicates_removed=fixed.changes.filter(pl.col("after") == REMOVED).height,
        upload=UploadCounts.of(result),
        resume=UploadCounts.of(resumed),
        sandbox_requests={str(k): int(v) for k, v in served.items()},
        fincome_differences={str(status): int(n) for status, n in differences},
        finance_months_off=finance_months_off,
        problems=_problem_lines(result),
        outputs=outputs,
        seconds=steps.seconds,
    )
