"""fincome_toolkit: load, validate, preview and upload billing data to Fincome.

The public API is what this module exports. Names are imported on first use (PEP 562), so the
CLI and a notebook only pay for the parts they touch: pandera, pandas and altair are slow to import.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "AuditResult": "fincome_toolkit.audit",
    "audit": "fincome_toolkit.audit",
    "AuditSettings": "fincome_toolkit.audit_settings",
    "Thresholds": "fincome_toolkit.audit_settings",
    "Bridge": "fincome_toolkit.bridge",
    "bridge_table": "fincome_toolkit.bridge",
    "compute_bridge": "fincome_toolkit.bridge",
    "monthly_movements": "fincome_toolkit.bridge",
    "movement_detail": "fincome_toolkit.bridge",
    "movements": "fincome_toolkit.bridge",
    "cohort_heatmap": "fincome_toolkit.charts",
    "movements_table": "fincome_toolkit.charts",
    "mrr_chart": "fincome_toolkit.charts",
    "rates_table": "fincome_toolkit.charts",
    "FincomeClient": "fincome_toolkit.client",
    "pull": "fincome_toolkit.client",
    "pull_sync": "fincome_toolkit.client",
    "ContractSettings": "fincome_toolkit.contract",
    "build_payloads": "fincome_toolkit.contract",
    "classify": "fincome_toolkit.contract",
    "DemoSummary": "fincome_toolkit.demo",
    "run_demo": "fincome_toolkit.demo",
    "FixResult": "fincome_toolkit.fixes",
    "apply_fixes": "fincome_toolkit.fixes",
    "load_fx_rates": "fincome_toolkit.fx",
    "Journal": "fincome_toolkit.journal",
    "LoadedFrame": "fincome_toolkit.loading",
    "load_dataset": "fincome_toolkit.loading",
    "load_frame": "fincome_toolkit.loading",
    "read_source": "fincome_toolkit.loading",
    "write_clean": "fincome_toolkit.loading",
    "ColumnMapping": "fincome_toolkit.mapping",
    "FrameMapping": "fincome_toolkit.mapping",
    "MrrOptions": "fincome_toolkit.metrics",
    "horizon": "fincome_toolkit.metrics",
    "mrr_by_customer": "fincome_toolkit.metrics",
    "mrr_lines": "fincome_toolkit.metrics",
    "ParseOptions": "fincome_toolkit.parsing",
    "Parsed": "fincome_toolkit.parsing",
    "parse_amounts": "fincome_toolkit.parsing",
    "parse_countries": "fincome_toolkit.parsing",
    "parse_currencies": "fincome_toolkit.parsing",
    "parse_dates": "fincome_toolkit.parsing",
    "parse_ids": "fincome_toolkit.parsing",
    "parse_integers": "fincome_toolkit.parsing",
    "parse_interval_units": "fincome_toolkit.parsing",
    "parse_invoice_statuses": "fincome_toolkit.parsing",
    "parse_invoice_types": "fincome_toolkit.parsing",
    "parse_subscription_statuses": "fincome_toolkit.parsing",
    "cohort_table": "fincome_toolkit.rates",
    "cohorts": "fincome_toolkit.rates",
    "monthly_rates": "fincome_toolkit.rates",
    "trailing_rates": "fincome_toolkit.rates",
    "Reconciliation": "fincome_toolkit.reconcile",
    "Tolerance": "fincome_toolkit.reconcile",
    "load_finance_file": "fincome_toolkit.reconcile",
    "reconcile_all": "fincome_toolkit.reconcile",
    "reconcile_finance": "fincome_toolkit.reconcile",
    "reconcile_fincome": "fincome_toolkit.reconcile",
    "reconcile_sources": "fincome_toolkit.reconcile",
    "write_failing_records": "fincome_toolkit.report",
    "write_html_report": "fincome_toolkit.report",
    "write_issues_csv": "fincome_toolkit.report",
    "write_json_summary": "fincome_toolkit.report",
    "write_report": "fincome_toolkit.report",
    "RetryPolicy": "fincome_toolkit.retry",
    "RULES": "fincome_toolkit.rules",
    "rule_catalog": "fincome_toolkit.rules",
    "SampleResult": "fincome_toolkit.sample",
    "generate": "fincome_toolkit.sample",
    "write_export": "fincome_toolkit.sample",
    "SandboxSettings": "fincome_toolkit.sandbox",
    "create_app": "fincome_toolkit.sandbox",
    "sandbox": "fincome_toolkit.sandbox",
    "validate_schemas": "fincome_toolkit.schemas",
    "run_upload": "fincome_toolkit.upload",
    "upload": "fincome_toolkit.upload",
    "UploadPlan": "fincome_toolkit.upload_plan",
    "dry_run": "fincome_toolkit.upload_plan",
    "MarimoProgress": "fincome_toolkit.upload_progress",
    "ProgressEvent": "fincome_toolkit.upload_progress",
    "RichProgress": "fincome_toolkit.upload_progress",
    "UploadResult": "fincome_toolkit.upload_result",
}

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
    "read_source",
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


def __getattr__(name: str) -> Any:
    """Import a public name from its module the first time it is used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


class _PublicApi(types.ModuleType):
    """The package module. Importing a submodule such as `fincome_toolkit.audit` would bind the
    package attribute `audit` to that module and hide the public function of the same name; this
    keeps the public name instead (the submodule stays importable through `sys.modules`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicApi


def __dir__() -> list[str]:
    """The public names, loaded or not (for tab completion)."""
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # let type checkers and IDEs see the real objects
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
    from fincome_toolkit.loading import (
        LoadedFrame,
        load_dataset,
        load_frame,
        read_source,
        write_clean,
    )
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
