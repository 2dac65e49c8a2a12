"""The `fincome-toolkit upload` command's work: load, audit, dry run or upload, then report.

Kept out of cli.py so the click command stays a thin parser. Everything printed goes through a
rich console; nothing printed ever contains the API key (it is only handed to the client).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
from rich.console import Console
from rich.table import Table

from fincome_toolkit.contract import ContractSettings
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.journal import Journal, default_journal_path
from fincome_toolkit.upload import DEFAULT_CONCURRENCY

if TYPE_CHECKING:
    from fincome_toolkit.audit import AuditResult

INTERRUPTED_EXIT_CODE = 130  # the shell's convention for Ctrl-C


@dataclass(frozen=True)
class UploadOptions:
    """The options of the `upload` command."""

    base_url: str | None = None
    contract_file: Path | None = None
    journal: Path | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    dry_run_dir: Path | None = None
    allow_updates: bool = False
    force: bool = False
    retry_rejected: bool = False
    results: Path | None = None

    def settings(self) -> ContractSettings:
        """The contract settings: defaults, corrected by --contract, then --base-url."""
        settings = ContractSettings()
        if self.contract_file is not None:
            settings = ContractSettings.from_toml(self.contract_file)
        if self.base_url:
            if not self.base_url.startswith(("http://", "https://")):
                raise ConfigError(
                    f"--base-url {self.base_url!r} is not an http(s) URL",
                    fix="e.g. --base-url https://api2.fincome.co/product",
                )
            settings = settings.replace(base_url=self.base_url)
        return settings

    def journal_path(self, settings: ContractSettings) -> Path:
        """--journal, or the default journal of the target."""
        return self.journal or default_journal_path(settings.base_url)


def run_upload_command(
    load: Callable[[], Dataset], options: UploadOptions, *, console: Console | None = None
) -> int:
    """Run the command; returns its exit code (0 all in Fincome, 1 records to look at)."""
    from fincome_toolkit.client import resolve_api_key

    console = console or Console(highlight=False, soft_wrap=True)  # paths stay whole
    if options.concurrency < 1:
        raise ConfigError(f"--concurrency {options.concurrency}", fix="use 1 or more")
    settings = options.settings()
    if options.dry_run_dir is None:
        resolve_api_key(settings)  # a missing key is said before minutes of loading
    dataset = load()
    console.print(
        "loaded "
        + ", ".join(f"{frame.height:,} {name}" for name, frame in dataset.frames().items())
    )
    checked = _audit(dataset, console, force=options.force)
    if options.dry_run_dir is not None:
        return _dry_run(dataset, checked, options, settings, console)
    return _upload(dataset, checked, options, settings, console)


def _audit(dataset: Dataset, console: Console, *, force: bool) -> AuditResult:
    from fincome_toolkit.audit import audit

    checked = audit(dataset)
    blocked = checked.blocked_records().height
    if blocked:
        what = "sent anyway (--force)" if force else "held back (--force sends them)"
        console.print(f"audit: {blocked:,} records have error issues: {what}")
    else:
        console.print("audit: no error issues")
    return checked


def _dry_run(
    dataset: Dataset,
    checked: AuditResult,
    options: UploadOptions,
    settings: ContractSettings,
    console: Console,
) -> int:
    from fincome_toolkit.upload_plan import dry_run

    path = options.journal_path(settings)
    journal = Journal(path, base_url=settings.base_url) if path.is_file() else None
    try:
        plan = dry_run(
            dataset,
            options.dry_run_dir,
            audit=checked,
            journal=journal,
            force=options.force,
            retry_rejected=options.retry_rejected,
        )
    finally:
        if journal is not None:
            journal.close()
    _print_table(plan.counts(), title="Upload plan (dry run)", console=console)
    console.print(
        f"dry run: payloads (NDJSON per entity), plan.csv and plan.json in {options.dry_run_dir};"
        " nothing was sent"
    )
    counts = plan.counts()
    return 1 if counts["held_back"].sum() + counts["rejected"].sum() else 0


def _upload(
    dataset: Dataset,
    checked: AuditResult,
    options: UploadOptions,
    settings: ContractSettings,
    console: Console,
) -> int:
    from fincome_toolkit.upload import run_upload
    from fincome_toolkit.upload_progress import RichProgress

    journal_path = options.journal_path(settings)
    console.print(f"uploading to {settings.base_url} (journal: {journal_path})")
    try:
        with RichProgress(console=console) as progress:
            result = run_upload(
                dataset,
                settings=settings,
                journal=journal_path,
                audit=checked,
                force=options.force,
                allow_updates=options.allow_updates,
                retry_rejected=options.retry_rejected,
                concurrency=options.concurrency,
                progress=progress,
            )
    except KeyboardInterrupt:
        console.print(
            "interrupted: run the same command again to resume; the journal makes sure "
            "nothing is sent twice"
        )
        return INTERRUPTED_EXIT_CODE
    _print_table(result.counts(), title="Upload to Fincome", console=console)
    console.print(
        f"{result.count('acknowledged'):,} records acknowledged in {result.seconds:.1f} s "
        f"({result.records_per_second:,.0f} records/s, {result.requests:,} requests)"
    )
    if options.results is not None:
        written = result.write_csv(options.results, problems_only=False)
        console.print(f"outcome of every record → {written}")
    problems = result.problems().height
    if problems and options.results is None:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        path = result.write_csv(journal_path.parent / f"upload-problems-{stamp}.csv")
        console.print(f"{problems:,} records to look at (reason, file and line) → {path}")
    elif problems:
        console.print(f"{problems:,} records to look at: see the outcome column of the CSV")
    return result.exit_code


def _print_table(counts: pl.DataFrame, *, title: str, console: Console) -> None:
    table = Table(title=title, title_justify="left")
    for name in counts.columns:
        table.add_column(name.replace("_", " "), justify="left" if name == "entity" else "right")
    for row in counts.iter_rows():
        table.add_row(*(f"{value:,}" if isinstance(value, int) else str(value) for value in row))
    console.print(table)
