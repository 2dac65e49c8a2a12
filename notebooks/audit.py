import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Audit a billing export")


@app.cell(hide_code=True)
def _():
    import datetime as dt
    from pathlib import Path

    import marimo as mo
    import polars as pl

    from fincome_toolkit.audit import audit
    from fincome_toolkit.errors import ToolkitError
    from fincome_toolkit.fixes import apply_fixes
    from fincome_toolkit.frames import FRAME_NAMES
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.report import ISSUE_COLUMNS, csv_ready
    from fincome_toolkit.report_html import render_html_report
    from fincome_toolkit.sample import AS_OF

    return (
        AS_OF,
        FRAME_NAMES,
        ISSUE_COLUMNS,
        Path,
        ToolkitError,
        apply_fixes,
        audit,
        csv_ready,
        dt,
        load_dataset,
        mo,
        pl,
        render_html_report,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Audit a billing export before it goes to Fincome

    This notebook reads an export of **customers**, **subscriptions** and **invoices**, checks it
    against the rules Fincome applies (and the ones that keep MRR right), and shows what to fix,
    record by record, with the file and line each problem comes from.

    It only *looks*: your files are never changed. The safe mechanical fixes at the end are shown
    with their change log, so you decide whether to apply them in your ERP or keep the fixed copy.

    **How to use it.** By default it audits the bundled sample export, which is dirty on purpose.
    Point it at your own export folder below (the folder holding `customers.*`,
    `subscriptions.*`, `invoices.*` and optionally a `mapping.toml` made with the *clean*
    notebook). Everything below updates by itself.
    """)
    return


@app.cell(hide_code=True)
def _(Path, mo):
    sample_dir = (mo.notebook_dir() / ".." / "sample_data").resolve()
    default_dir = mo.cli_args().get("data") or str(sample_dir)
    folder_input = mo.ui.text(
        value=str(default_dir), label="Export folder", full_width=True
    )
    folder_input
    return folder_input, sample_dir


@app.cell(hide_code=True)
def _(AS_OF, Path, dt, folder_input, mo, sample_dir):
    data_dir = Path(folder_input.value).expanduser()
    mapping_path = data_dir / "mapping.toml"
    # The sample is generated as of a fixed day; real exports are judged as of today.
    default_as_of = AS_OF if data_dir.resolve() == sample_dir else dt.date.today()
    as_of_input = mo.ui.date(
        value=default_as_of, label="Audit date (what counts as 'in the future')"
    )
    as_of_input
    return as_of_input, data_dir, mapping_path


@app.cell(hide_code=True)
def _(ToolkitError, data_dir, load_dataset, mapping_path, mo):
    try:
        dataset = load_dataset(
            data_dir, mapping=mapping_path if mapping_path.is_file() else None
        )
    except ToolkitError as _error:
        _message = f"**The export cannot be loaded.**\n\n```\n{_error.message}\n```"
        mo.stop(True, mo.callout(mo.md(_message), kind="danger"))
    mo.hstack(
        [
            mo.stat(f"{dataset.customers.height:,}", label="customers", bordered=True),
            mo.stat(f"{dataset.subscriptions.height:,}", label="subscriptions", bordered=True),
            mo.stat(f"{dataset.invoices.height:,}", label="invoices", bordered=True),
            mo.stat(
                f"{dataset.parse_issues.height:,}",
                label="unreadable values",
                caption="kept as parse issues",
                bordered=True,
            ),
        ],
        justify="start",
    )
    return (dataset,)


@app.cell(hide_code=True)
def _(as_of_input, audit, dataset, mo):
    result = audit(dataset, as_of=as_of_input.value)
    mo.vstack(
        [
            mo.md(
                "## Verdict and rule summary\n\n"
                "One line per rule, passed ones included. **Errors** block the upload of the "
                "records they hit (Fincome would reject them or the metrics would be wrong); "
                "**warnings** need a human look; **info** is noted."
            ),
            result,
        ]
    )
    return (result,)


@app.cell(hide_code=True)
def _(FRAME_NAMES, csv_ready, mo, pl, result):
    def _frame_tab(frame):
        rules = result.summary.filter(pl.col("frame") == frame, pl.col("failed") > 0).select(
            "rule", "severity", "title", "failed", "fix"
        )
        first = ["source_file", "source_line", "worst_severity", "rules", "messages"]
        records = csv_ready(result.failing_records(frame)).select(*first, pl.exclude(first))
        return mo.vstack(
            [
                mo.md(f"**{rules.height} rule(s) fail on {frame}.**"),
                mo.ui.table(rules, selection=None, page_size=10, show_download=False),
                mo.md(
                    f"**{records.height:,} {frame} record(s) with at least one issue**, as loaded, "
                    "with the rules that hit them:"
                ),
                mo.ui.table(records, selection=None, page_size=10),
            ]
        )

    _labels = {
        f"{frame} ({result.failing_records(frame).height:,} to look at)": frame
        for frame in FRAME_NAMES
    }
    mo.vstack(
        [
            mo.md("## Failing records, frame by frame"),
            mo.ui.tabs({label: _frame_tab(frame) for label, frame in _labels.items()}, lazy=True),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo, pl, result):
    _failing = result.summary.filter(pl.col("failed") > 0).sort("frame", "rule")
    rule_options = {"(every rule)": ""} | {
        f"{row['rule']} · {row['title']} ({row['failed']:,})": row["rule"]
        for row in _failing.iter_rows(named=True)
    }
    rule_picker = mo.ui.dropdown(
        options=rule_options, value="(every rule)", label="Rule", searchable=False
    )
    severity_picker = mo.ui.dropdown(
        options=["every severity", "error", "warning", "info"],
        value="every severity",
        label="Severity",
    )
    mo.vstack(
        [
            mo.md(
                "## Browse the issues\n\nPick a rule or a severity: the table lists every issue "
                "with the file, line and value it comes from. Use the table's search box and "
                "column filters to narrow it further, and its download button to export it."
            ),
            mo.hstack([rule_picker, severity_picker], justify="start", gap=2),
        ]
    )
    return rule_picker, severity_picker


@app.cell(hide_code=True)
def _(ISSUE_COLUMNS, mo, pl, result, rule_picker, severity_picker):
    _issues = result.issues.select(ISSUE_COLUMNS)
    _notes = []
    if rule_picker.value:
        _issues = _issues.filter(pl.col("rule") == rule_picker.value)
        _rule = result.summary.filter(pl.col("rule") == rule_picker.value).row(0, named=True)
        _notes.append(
            mo.callout(
                mo.md(
                    f"**{_rule['rule']} — {_rule['title']}** ({_rule['severity']})\n\n"
                    f"*Why it matters:* {_rule['why']}\n\n*How to fix:* {_rule['fix']}"
                ),
                kind="danger" if _rule["severity"] == "error" else "warn",
            )
        )
    if severity_picker.value != "every severity":
        _issues = _issues.filter(pl.col("severity") == severity_picker.value)
    mo.vstack(
        [
            *_notes,
            mo.md(f"**{_issues.height:,} issue(s)** match."),
            mo.ui.table(_issues, selection=None, page_size=15, label="Issues"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    ## The safe fixes

    Some problems are mechanical and can be fixed without a judgement call (for example periods
    exported with an inclusive end date, or codes in the wrong case). They are applied to a
    *copy* of the data, each change listed below with the record, field, old and new value.
    The audit of the fixed copy shows what is left for a human.
    """)
    return


@app.cell(hide_code=True)
def _(apply_fixes, as_of_input, audit, dataset, mo, result):
    fixed = apply_fixes(dataset)
    after_fixes = audit(fixed.dataset, as_of=as_of_input.value)

    def _count(audited, severity):
        return audited.counts.get(severity, 0)

    mo.vstack(
        [
            mo.hstack(
                [
                    mo.stat(f"{fixed.changes.height:,}", label="changes", bordered=True),
                    *[
                        mo.stat(
                            f"{_count(after_fixes, severity):,}",
                            label=f"{severity}s after fixes",
                            caption=f"{_count(result, severity):,} before",
                            direction="decrease"
                            if _count(after_fixes, severity) < _count(result, severity)
                            else None,
                            target_direction="decrease",
                            bordered=True,
                        )
                        for severity in ("error", "warning", "info")
                    ],
                ],
                justify="start",
            ),
            mo.ui.table(fixed.changes, selection=None, page_size=10, label="Change log"),
        ]
    )
    return after_fixes, fixed


@app.cell(hide_code=True)
def _(ISSUE_COLUMNS, after_fixes, fixed, mo, render_html_report, result):
    mo.vstack(
        [
            mo.md(
                "## Take it with you\n\nThe HTML report opens offline and can be mailed as is; "
                "the issue CSV has one row per issue with file, line and value."
            ),
            mo.hstack(
                [
                    mo.download(
                        lambda: render_html_report(result).encode("utf-8"),
                        filename="audit_report.html",
                        mimetype="text/html",
                        label="Audit report (HTML)",
                    ),
                    mo.download(
                        lambda: result.issues.select(ISSUE_COLUMNS).write_csv().encode("utf-8"),
                        filename="audit_issues.csv",
                        mimetype="text/csv",
                        label="Issues (CSV)",
                    ),
                    mo.download(
                        lambda: fixed.changes.write_csv().encode("utf-8"),
                        filename="fixes_changes.csv",
                        mimetype="text/csv",
                        label="Fix change log (CSV)",
                    ),
                    mo.download(
                        lambda: render_html_report(after_fixes).encode("utf-8"),
                        filename="audit_report_after_fixes.html",
                        mimetype="text/html",
                        label="Report after fixes (HTML)",
                    ),
                ],
                justify="start",
            ),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
