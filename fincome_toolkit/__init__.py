"""fincome_toolkit: load, validate, preview and upload billing data to Fincome."""

__version__ = "0.1.0"

from fincome_toolkit.audit import AuditResult, audit
from fincome_toolkit.audit_settings import AuditSettings, Thresholds
from fincome_toolkit.bridge import (
    Bridge,
    bridge_table,
    compute_bridge,
    monthly_movements,
    movement_detail,
    movements,
)
from fincome_toolkit.charts import cohort_heatmap, movements_table, mrr_chart, rates_table
from fincome_toolkit.client import FincomeClient, pull, pull_sync
from fincome_toolkit.contract import ContractSettings, build_payloads, classify
from fincome_toolkit.demo import DemoSummary, run_demo
from fincome_toolkit.fixes import FixResult, apply_fixes
from fincome_toolkit.fx import load_fx_rates
from fincome_toolkit.journal import Journal
from fincome_toolkit.loading import LoadedFrame, load_dataset, load_frame, write_clean
from fincome_toolkit.mapping import ColumnMapping, FrameMapping
from fincome_toolkit.metrics import MrrOptions, horizon, mrr_by_customer, mrr_lines
from fincome_toolkit.parsing import (
    Parsed,
    ParseOptions,
    parse_amounts,
    parse_countries,
    parse_currencies,
    parse_dates,
    parse_ids,
    parse_integers,
    parse_interval_units,
    parse_invoice_statuses,
    parse_invoice_types,
    parse_subscription_statuses,
)
from fincome_toolkit.rates import cohort_table, cohorts, monthly_rates, trailing_rates
from fincome_toolkit.reconcile import (
    Reconciliation,
    Tolerance,
    load_finance_file,
    reconcile_all,
    reconcile_finance,
    reconcile_fincome,
    reconcile_sources,
)
from fincome_toolkit.report import (
    write_failing_records,
    write_html_report,
    write_issues_csv,
    write_json_summary,
    write_report,
)
from fincome_toolkit.retry import RetryPolicy
from fincome_toolkit.rules import RULES, rule_catalog
from fincome_toolkit.sample import SampleResult, generate, write_export
from fincome_toolkit.sandbox import SandboxSettings, create_app, sandbox
from fincome_toolkit.schemas import validate_schemas
from fincome_toolkit.upload import run_upload, upload
from fincome_toolkit.upload_plan import UploadPlan, dry_run
from fincome_toolkit.upload_progress import MarimoProgress, ProgressEvent, RichProgress
from fincome_toolkit.upload_result import UploadResult

__all__ = [
    "RULES",
    "AuditResult",
    "AuditSettings",
    "Bridge",
    "ColumnMapping",
    "ContractSettings",
    "DemoSummary",
    "FincomeClient",
    "FixResult",
    "FrameMapping",
    "Journal",
    "LoadedFrame",
    "MarimoProgress",
    "MrrOptions",
    "ParseOptions",
    "Parsed",
    "ProgressEvent",
    "Reconciliation",
    "RetryPolicy",
    "RichProgress",
    "SampleResult",
    "SandboxSettings",
    "Thresholds",
    "Tolerance",
    "UploadPlan",
    "UploadResult",
    "__version__",
    "apply_fixes",
    "audit",
    "bridge_table",
    "build_payloads",
    "classify",
    "cohort_heatmap",
    "cohort_table",
    "cohorts",
    "compute_bridge",
    "create_app",
    "dry_run",
    "generate",
    "horizon",
    "load_dataset",
    "load_finance_file",
    "load_frame",
    "load_fx_rates",
    "monthly_movements",
    "monthly_rates",
    "movement_detail",
    "movements",
    "movements_table",
    "mrr_by_customer",
    "mrr_chart",
    "mrr_lines",
    "parse_amounts",
    "parse_countries",
    "parse_currencies",
    "parse_dates",
    "parse_ids",
    "parse_integers",
    "parse_interval_units",
    "parse_invoice_statuses",
    "parse_invoice_types",
    "parse_subscription_statuses",
    "pull",
    "pull_sync",
    "rates_table",
    "reconcile_all",
    "reconcile_finance",
    "reconcile_fincome",
    "reconcile_sources",
    "rule_catalog",
    "run_demo",
    "run_upload",
    "sandbox",
    "trailing_rates",
    "upload",
    "validate_schemas",
    "write_clean",
    "write_export",
    "write_failing_records",
    "write_html_report",
    "write_issues_csv",
    "write_json_summary",
    "write_report",
]
