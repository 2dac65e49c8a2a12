"""The `fincome-toolkit` command line: thin commands over the library."""

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fincome_toolkit.errors import ToolkitError
from fincome_toolkit.frames import FRAME_NAMES, Dataset


def handles_toolkit_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a `ToolkitError` into its analyst-facing message on stderr and its exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ToolkitError as error:
            click.echo(f"error: {error.message}", err=True)
            raise SystemExit(error.exit_code) from None

    return wrapper


def data_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The common `DATA_DIR [--mapping FILE] [--only FRAME]` options of commands that load data."""
    command = click.option(
        "--only",
        "only",
        multiple=True,
        type=click.Choice(FRAME_NAMES),
        help="Load only this frame (repeat for several); default: all three.",
    )(command)
    command = click.option(
        "--mapping",
        type=click.Path(path_type=Path),
        default=None,
        help="Column mapping TOML file (default: none, or DATA_DIR/mapping.toml if present).",
    )(command)
    return click.argument("data_dir", type=click.Path(path_type=Path))(command)


def load_from_cli(data_dir: Path, mapping: Path | None, only: tuple[str, ...] = ()) -> Dataset:
    """Load a dataset the way every command does (DATA_DIR/mapping.toml is used when present)."""
    from fincome_toolkit.loading import load_dataset

    if mapping is None and (data_dir / "mapping.toml").is_file():
        mapping = data_dir / "mapping.toml"
    return load_dataset(data_dir, mapping=mapping, frames=only or None)


def console(**options: Any) -> Any:
    """A rich console as wide as the terminal, or 120 columns when output goes to a file or CI log
    (rich's 80-column default would cut the tables' column names)."""
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, **options)


@click.group()
@click.version_option(package_name="fincome-toolkit")
def main() -> None:
    """Load, audit, preview and upload billing data to Fincome."""


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_output"),
    show_default=True,
    help="Folder for every output of the demo (created; files inside are replaced).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run it on this export folder (with its mapping.toml) instead of the bundled sample.",
)
@handles_toolkit_errors
def demo(out_dir: Path, data_dir: Path | None) -> None:
    """Run the whole workflow on the bundled sample against a local sandbox with faults on.

    Clean, audit, fix, upload (with transient errors, lost answers and a rate limit), read back,
    reconcile, compute metrics; then print where each output is. Exit 0 when the workflow ran
    as designed: the sample is dirty on purpose, so held-back records are expected.
    """
    from fincome_toolkit.demo import SAMPLE_DIR, run_demo
    from fincome_toolkit.upload_progress import RichProgress

    with RichProgress(transient=True) as progress:
        summary = run_demo(
            out_dir, data_dir=data_dir or SAMPLE_DIR, progress=progress, say=click.echo
        )
    for line in summary.report_lines():
        click.echo(line)
    if not summary.ok:
        click.echo("error: the demo did not account for every record (see above)", err=True)
        raise SystemExit(1)


@main.command()
@data_options
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for customers/subscriptions/invoices.parquet and parse_issues.csv.",
)
@handles_toolkit_errors
def clean(data_dir: Path, mapping: Path | None, only: tuple[str, ...], out_dir: Path) -> None:
    """Load DATA_DIR into canonical frames and write them, with every unparsed value, to --out.

    Exit 0 when every value parsed, 1 when parse issues were written, 2 when the input is
    unusable.
    """
    from fincome_toolkit.loading import issue_summary, write_clean

    dataset = load_from_cli(data_dir, mapping, only)
    written = write_clean(dataset, out_dir)
    for source in dataset.sources:
        click.echo(f"{source.frame:<14} {source.rows:>9,} rows  from {source.path.name}")
    issues = dataset.parse_issues
    click.echo(f"parse issues   {issues.height:>9,}  → {written['parse_issues']}")
    for row in issue_summary(issues).iter_rows(named=True):
        click.echo(f"  {row['count']:>7,} × {row['frame']}.{row['column']}: {row['reason']}")
    click.echo(f"wrote {', '.join(p.name for p in written.values())} to {out_dir}")
    raise SystemExit(1 if issues.height else 0)


@main.command()
@data_options
@click.option(
    "--source",
    type=click.Choice(["subscriptions", "invoices"]),
    default="subscriptions",
    show_default=True,
    help="Compute MRR from the subscriptions or from the invoices' service periods.",
)
@click.option("--currency", default=None, help="Reporting currency (needs --rates), e.g. EUR.")
@click.option(
    "--until",
    default=None,
    metavar="YYYY-MM",
    help="Last month computed (the data's as-of); default: the month of the latest invoice.",
)
@click.option(
    "--rates",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Exchange rates CSV date,currency,rate (units of currency per 1 reporting unit).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write month,mrr,customers,new,reactivation,expansion,contraction,churn here.",
)
@click.option(
    "--detail",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the per customer-month movements (with their category) here.",
)
@handles_toolkit_errors
def metrics(
    data_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    source: str,
    currency: str | None,
    until: str | None,
    rates: Path | None,
    out: Path | None,
    detail: Path | None,
) -> None:
    """Preview MRR and its monthly movements from DATA_DIR.

    Several currencies need --currency and --rates (exit 2 otherwise). With a reporting
    currency, the CSV counts FX changes in expansion/contraction so its columns add up; the
    terminal table and --detail show the FX effect on its own.
    """
    from fincome_toolkit.bridge import compute_bridge, terminal_lines
    from fincome_toolkit.errors import ConfigError
    from fincome_toolkit.fx import load_fx_rates
    from fincome_toolkit.metrics import MrrOptions

    if (currency is None) != (rates is None):
        raise ConfigError(
            "--currency and --rates go together",
            fix="give both (--currency EUR --rates rates.csv) or neither",
        )
    dataset = load_from_cli(data_dir, mapping, only)
    table = load_fx_rates(rates) if rates else None
    bridge = compute_bridge(
        dataset,
        source=source,
        options=MrrOptions(until=_month(until)),
        currency=currency.upper() if currency else None,
        rates=table,
    )
    if out:
        bridge.table.write_csv(out)
    if detail:
        bridge.detail.write_csv(detail)
    for line in terminal_lines(bridge.monthly):
        click.echo(line)
    written = [str(path) for path in (out, detail) if path]
    if written:
        click.echo(f"wrote {', '.join(written)}")


@main.command()
@data_options
@click.option(
    "--finance",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Finance's MRR or ARR file (CSV/XLSX: month, amount|mrr|arr, optional customer_id).",
)
@click.option(
    "--tolerance",
    default="0.01",
    show_default=True,
    help="Accepted difference with --finance: an amount (5) or a share of finance's (0.5%).",
)
@click.option(
    "--base-url",
    default=None,
    help="Compare with what Fincome holds at this API URL (key from FINCOME_API_KEY).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reconciliation"),
    show_default=True,
    help="Folder for sources.csv, finance.csv and fincome.csv.",
)
@handles_toolkit_errors
def reconcile(
    data_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    finance: Path | None,
    tolerance: str,
    base_url: str | None,
    out_dir: Path,
) -> None:
    """Explain differences: invoices vs subscriptions, vs finance's file, vs Fincome.

    Exit 0 when everything agrees, 1 when findings were written, 2 when an input is unusable.
    """
    from fincome_toolkit.reconcile import load_finance_file, reconcile_all

    dataset = load_from_cli(data_dir, mapping, only)
    finance_file = load_finance_file(finance) if finance else None
    fincome = None
    if base_url:
        from fincome_toolkit.client import pull_sync
        from fincome_toolkit.contract import ContractSettings

        fincome = pull_sync(ContractSettings(base_url=base_url))
    result = reconcile_all(
        dataset, finance=finance_file, tolerance=_tolerance(tolerance), fincome=fincome
    )
    written = result.write(out_dir)
    for line in result.summary():
        click.echo(line)
    click.echo(f"wrote {', '.join(path.name for path in written)} to {out_dir}")
    raise SystemExit(0 if result.clean else 1)


@main.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, help="Port (0 = any free port).")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for the data (kept across restarts); default: in memory.",
)
@click.option(
    "--api-key",
    envvar="FINCOME_SANDBOX_API_KEY",
    default="sandbox-key",
    show_default=True,
    help="Key clients must send (env FINCOME_SANDBOX_API_KEY). A chosen key is never printed.",
)
@click.option("--rate-limit", type=float, default=None, help="Requests per second, then 429.")
@click.option("--fail-rate", type=float, default=0.0, help="Fraction answered 500/503 (0-1).")
@click.option("--drop-rate", type=float, default=0.0, help="Fraction of answers lost (0-1).")
@click.option("--latency", type=float, default=0.0, help="Milliseconds added to each request.")
@click.option(
    "--duplicate-policy",
    type=click.Choice(["upsert", "conflict"]),
    default="upsert",
    show_default=True,
    help="What a second POST /invoices with a known id does (assumption A4).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the faults.")
@handles_toolkit_errors
def sandbox_command(
    host: str,
    port: int,
    db: Path | None,
    api_key: str,
    rate_limit: float | None,
    fail_rate: float,
    drop_rate: float,
    latency: float,
    duplicate_policy: str,
    seed: int,
) -> None:
    """Run a local server implementing the Fincome API contract, with optional faults."""
    from fincome_toolkit.sandbox import SandboxSettings, serve

    settings = SandboxSettings(
        api_key=api_key,
        db=db,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        drop_rate=drop_rate,
        latency_ms=latency,
        duplicate_policy=duplicate_policy,
        seed=seed,
    )
    serve(settings, host=host, port=port, announce=click.echo)


@main.command("pull")
@click.option(
    "--base-url",
    default=None,
    help="API base URL (default: Fincome's, or the one in --contract). Key: FINCOME_API_KEY.",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for customers/subscriptions/invoices.parquet and parse_issues.csv.",
)
@click.option(
    "--contract",
    "contract_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file correcting the API assumptions (paths, auth header, listing).",
)
@handles_toolkit_errors
def pull_command(base_url: str | None, out_dir: Path, contract_file: Path | None) -> None:
    """Read back everything the API holds into canonical Parquet frames in --out."""
    from fincome_toolkit.client import pull_sync
    from fincome_toolkit.contract import ContractSettings
    from fincome_toolkit.loading import write_clean

    settings = ContractSettings.from_toml(contract_file) if contract_file else ContractSettings()
    if base_url:
        settings = settings.replace(base_url=base_url)
    dataset = pull_sync(settings)
    written = write_clean(dataset, out_dir)
    for name, frame in dataset.frames().items():
        click.echo(f"{name:<14} {frame.height:>9,} records  → {written[name]}")
    if dataset.parse_issues.height:
        click.echo(
            f"{dataset.parse_issues.height:,} value(s) did not fit the canonical types"
            f" → {written['parse_issues']}"
        )


@main.command("upload")
@data_options
@click.option(
    "--base-url", default=None, help="API base URL (default: Fincome's, or --contract's)."
)
@click.option(
    "--contract",
    "contract_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file correcting the API assumptions (paths, auth header, listing).",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Upload journal (SQLite); default: .fincome/journal-<host>-<hash>.sqlite per target.",
)
@click.option("--concurrency", default=32, show_default=True, help="Requests in flight at once.")
@click.option(
    "--dry-run",
    "dry_run_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the payloads (NDJSON per entity) and the plan to this folder; send nothing.",
)
@click.option("--allow-updates", is_flag=True, help="Overwrite records Fincome holds differently.")
@click.option("--force", is_flag=True, help="Also send records with error issues in the audit.")
@click.option("--retry-rejected", is_flag=True, help="Send again records rejected before.")
@click.option(
    "--results",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every record's outcome here (CSV); default: only the records to look at, "
    "in .fincome/.",
)
@handles_toolkit_errors
def upload_command(
    data_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    base_url: str | None,
    contract_file: Path | None,
    journal_path: Path | None,
    concurrency: int,
    dry_run_dir: Path | None,
    allow_updates: bool,
    force: bool,
    retry_rejected: bool,
    results: Path | None,
) -> None:
    """Audit DATA_DIR and upload it to Fincome: ordered, concurrent, retried and resumable.

    The API key comes from FINCOME_API_KEY. Progress is kept in a journal: run the same command
    again after a crash or Ctrl-C and only what is missing is sent. Exit 0 when every record is
    in Fincome, 1 when some were rejected, held back or in conflict (see the CSV), 2 when the
    input or the settings are unusable.
    """
    from fincome_toolkit.upload_command import UploadOptions, run_upload_command

    options = UploadOptions(
        base_url=base_url,
        contract_file=contract_file,
        journal=journal_path,
        concurrency=concurrency,
        dry_run_dir=dry_run_dir,
        allow_updates=allow_updates,
        force=force,
        retry_rejected=retry_rejected,
        results=results,
    )

    def load() -> Dataset:  # called once the settings are checked
        return load_from_cli(data_dir, mapping, only)

    plain = console(highlight=False, soft_wrap=True)  # paths stay whole
    raise SystemExit(run_upload_command(load, options, console=plain))


@main.command("audit")
@data_options
@click.option(
    "--report",
    "report_html",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the standalone HTML report here (opens offline).",
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON summary (verdict, counts, rules) here, for CI jobs.",
)
@click.option(
    "--issues",
    "issues_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every issue row (rule, severity, record, file, line, value, message) here.",
)
@click.option(
    "--failing-records",
    "failing_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write failing_<frame>.csv (the source records to fix in the ERP) into this folder.",
)
@click.option(
    "--as-of",
    default=None,
    help="Judge 'future' dates and statuses at this date (YYYY-MM-DD); default: today.",
)
@click.option(
    "--settings",
    "settings_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML file with an [audit] table: thresholds per rule, tolerances, rules to skip.",
)
@handles_toolkit_errors
def audit_command(
    data_dir: Path,
    mapping: Path | None,
    only: tuple[str, ...],
    report_html: Path | None,
    json_path: Path | None,
    issues_csv: Path | None,
    failing_dir: Path | None,
    as_of: str | None,
    settings_file: Path | None,
) -> None:
    """Check DATA_DIR against every rule before anything reaches Fincome.

    Prints the rules that found something and the verdict. Exit 0 when no error-severity issue,
    1 when there is one (the records concerned would be held back), 2 when the input is unusable.
    """
    from fincome_toolkit import report
    from fincome_toolkit.audit import audit
    from fincome_toolkit.audit_settings import AuditSettings

    settings = AuditSettings.from_toml(settings_file) if settings_file else AuditSettings()
    result = audit(load_from_cli(data_dir, mapping, only), as_of=as_of, settings=settings)
    console(soft_wrap=False).print(report.summary_table(result))
    written = [
        report.write_html_report(result, report_html) if report_html else None,
        report.write_json_summary(result, json_path) if json_path else None,
        report.write_issues_csv(result, issues_csv) if issues_csv else None,
        *(report.write_failing_records(result, failing_dir) if failing_dir else ()),
    ]
    if any(written):
        click.echo(f"wrote {', '.join(str(path) for path in written if path)}")
    raise SystemExit(1 if result.verdict == "fail" else 0)


@main.command("sample")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same data.")
@click.option("--customers", type=int, default=None, help="Default 200 (or from the others).")
@click.option("--subscriptions", type=int, default=None, help="Default 1.5 per customer.")
@click.option("--invoices", type=int, default=None, help="Default 10 per subscription.")
@click.option("--clean", is_flag=True, help="Plant no defects (the manifest is then empty).")
@click.option(
    "--style",
    type=click.Choice(["erp", "canonical"]),
    default="erp",
    show_default=True,
    help="erp: French ERP-looking files (csv;, json, xlsx); canonical: canonical columns.",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["csv", "parquet", "ndjson"]),
    default=None,
    help="One format for every frame (default: csv for canonical, csv/json/xlsx for erp).",
)
@handles_toolkit_errors
def sample_command(
    out_dir: Path,
    seed: int,
    customers: int | None,
    subscriptions: int | None,
    invoices: int | None,
    clean: bool,
    style: str,
    file_format: str | None,
) -> None:
    """Generate a seeded three-year billing history and write it to OUT_DIR as an export.

    Also writes mapping.toml (loads the export) and manifest.csv (the planted defects).
    """
    from fincome_toolkit.sample import write_sample

    result = write_sample(
        out_dir,
        customers=customers,
        subscriptions=subscriptions,
        invoices=invoices,
        seed=seed,
        defects=not clean,
        style=style,  # type: ignore[arg-type]
        formats=file_format,
    )
    sizes = ", ".join(f"{count:,} {name}" for name, count in result.counts.items())
    click.echo(
        f"wrote {sizes} and {result.manifest.height} planted defects to {out_dir} "
        f"(seed {seed}, as of {result.as_of})"
    )


def _month(text: str | None) -> Any:
    """`YYYY-MM` → the first day of that month (None stays None)."""
    import datetime

    from fincome_toolkit.errors import ConfigError

    if text is None:
        return None
    try:
        return datetime.datetime.strptime(text.strip(), "%Y-%m").date()
    except ValueError:
        raise ConfigError(f"--until {text!r} is not a month", fix="write it as YYYY-MM") from None


def _tolerance(text: str) -> Any:
    from decimal import InvalidOperation

    from fincome_toolkit.errors import ConfigError
    from fincome_toolkit.reconcile import Tolerance

    try:
        return Tolerance.parse(text)
    except (InvalidOperation, ValueError):
        raise ConfigError(
            f"--tolerance {text!r} is not an amount or a percentage", fix="e.g. 5 or 0.5%"
        ) from None
