"""The audit as HTML: a standalone report page and a light summary for notebooks.

Built in two stages (see ../shared/style.md): tidy polars frames first (one row per rule, capped
extracts of failing rows), then great-tables turns each into an HTML table. great-tables escapes
unformatted cells, but trusts what a formatter returns, so every formatter here escapes its input
itself; `fmt_markdown` and `fmt_url` are not used because they pass data through unescaped.

The page opens without any network: no script, no web font, no external reference, and a
Content-Security-Policy that forbids them should anything slip in.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html import escape
from typing import Any

import polars as pl
from great_tables import GT, loc, style

from fincome_toolkit.report_data import (
    ALL_KEYS,
    DEFAULT_EXTRACT_ROWS,
    PALETTE,
    count_phrase,
    extract_frames,
    ordered_summary,
    severity_counts,
    verdict_sentence,
)

VERDICT_COLOURS = {"fail": ("#b42318", "#fef3f2"), "pass": ("#067647", "#ecfdf3")}

KEY_LABELS = {
    "name": "Name",
    "email": "Email",
    "customer_id": "Customer id",
    "plan_id": "Plan",
    "subscription_id": "Subscription id",
}

HOW_TO_READ = (
    "Each rule checks one thing about your export. Red rules found errors: those records would be "
    "rejected by Fincome or would make the metrics wrong, so they are held back from the upload. "
    "Amber rules found suspicious values that deserve a human look; blue ones are notes. "
    "Click a rule code to jump to the rows it flagged, with the file and line to fix in the "
    "source system, then export and audit again."
)

PAGE_CSS = """
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d2939;
  font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 32px 40px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 40px 0 12px; padding-bottom: 6px; border-bottom: 1px solid #d0d5dd; }
h3 { font-size: 16px; margin: 0 0 6px; }
p { margin: 6px 0; }
.muted { color: #667085; }
.card { background: #fff; border: 1px solid #e4e7ec; border-radius: 10px; padding: 18px 22px;
  margin: 14px 0; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0 0 12px; }
.facts dt { color: #667085; } .facts dd { margin: 0; }
.extract { scroll-margin-top: 16px; }
.extract .hint { font-size: 14px; }
.extract .cap { font-weight: 600; margin-top: 10px; }
.pill { display: inline-block; border-radius: 999px; padding: 1px 10px; font-size: 12px;
  font-weight: 600; letter-spacing: .02em; vertical-align: 2px; margin-right: 6px; }
a { color: #155eef; }
a.back { font-size: 13px; float: right; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.gt_table { width: 100% !important; }
@media print { body { background: #fff; } a.back { display: none; }
  .card, tr { break-inside: avoid; } }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


# ---------------------------------------------------------------------------------------------
# Blocks


def anchor_ids(rules: list[str]) -> dict[str, str]:
    """A safe, unique HTML id per rule code (rule codes are data, ids must not be)."""
    ids: dict[str, str] = {}
    for index, rule in enumerate(rules):
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", rule).strip("-") or "rule"
        ids[rule] = (
            f"extract-{slug}" if f"extract-{slug}" not in ids.values() else f"extract-{index}"
        )
    return ids


def verdict_block(result: Any) -> str:
    """The verdict banner, with inline styles so that it also renders inside a notebook."""
    fg, bg = VERDICT_COLOURS.get(result.verdict, VERDICT_COLOURS["fail"])
    counts = severity_counts(result)
    chips = "".join(_count_chip(n, severity) for severity, n in counts.items())
    return (
        f'<section class="verdict" style="border-left:8px solid {fg};background:{bg};'
        f'border-radius:10px;padding:18px 24px;margin:18px 0;font-family:inherit">'
        f'<div style="font-size:40px;font-weight:800;letter-spacing:.04em;color:{fg};'
        f'line-height:1.1">{escape(str(result.verdict).upper())}</div>'
        f'<div style="margin:10px 0 6px">{chips}</div>'
        f'<p style="margin:4px 0;font-size:16px;color:#1d2939">'
        f"{escape(verdict_sentence(result))}</p></section>"
    )


def _count_chip(n: int, severity: str) -> str:
    """A rounded count label in the severity colour; grey when there is nothing to count."""
    border, colour = (
        ("#d0d5dd", "#667085") if n == 0 else (PALETTE[severity]["bar"], PALETTE[severity]["fg"])
    )
    return (
        '<span style="display:inline-block;margin:0 8px 4px 0;padding:3px 12px;'
        f"border-radius:999px;background:#fff;border:1px solid {border};color:{colour};"
        f'font-weight:600;font-size:14px">{escape(count_phrase(n, severity))}</span>'
    )


def context_block(result: Any) -> str:
    """Which files were judged (SHA-256 proves which export), by which version, as of when."""
    context = result.context or {}
    rows = context.get("rows") or {}
    facts = {
        "Toolkit version": context.get("version"),
        "Audit run at": context.get("generated_at"),
        "Billing data as of": context.get("as_of"),
        "Rows per frame": " · ".join(f"{frame} {int(n):,}" for frame, n in rows.items()),
    }
    facts_html = "".join(
        f"<dt>{escape(label)}</dt><dd>{escape('—' if value in (None, '') else str(value))}</dd>"
        for label, value in facts.items()
    )
    files = context.get("files") or []
    if not files:
        note = "No source file recorded: this data was built in memory, not read from an export."
        return f'<dl class="facts">{facts_html}</dl><p class="muted">{escape(note)}</p>'
    table = (
        _styled(GT(_files_frame(files), id="gt-files"))
        .cols_label(frame="Frame", path="File", format="Format", rows="Rows", sha256="SHA-256")
        .fmt_integer(columns="rows")
        .tab_style(
            style.text(font="ui-monospace, Menlo, Consolas, monospace", size="12px"),
            loc.body(columns="sha256"),
        )
        .sub_missing(missing_text="—")
    )
    return f'<dl class="facts">{facts_html}</dl>{html_of(table)}'


def _files_frame(files: list[dict[str, Any]]) -> pl.DataFrame:
    """The context's file list as a frame with the columns the report shows, text but rows."""
    schema = dict.fromkeys(FILE_COLUMNS, pl.String) | {"rows": pl.Int64}
    rows = [
        {key: (f.get(key) if key == "rows" else _text(f.get(key))) for key in FILE_COLUMNS}
        for f in files
    ]
    return pl.DataFrame(rows, schema=schema)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


FILE_COLUMNS = ("frame", "path", "format", "rows", "sha256")


# ---------------------------------------------------------------------------------------------
# The rule summary table


def summary_gt(result: Any, *, anchors: dict[str, str] | None = None) -> GT:
    """One row per rule, passed ones included; rule codes link to their extract when `anchors`."""
    summary = ordered_summary(result.summary).with_columns(
        passed=(pl.col("checked") - pl.col("failed")).clip(lower_bound=0),
        label=pl.col("status").replace_strict(
            {s: p["label"] for s, p in PALETTE.items()}, default=pl.col("status")
        ),
        fg=_palette_expr("fg"),
        bg=_palette_expr("bg"),
        about=pl.concat_str(
            [pl.col(c).cast(pl.String).fill_null("") for c in ("title", "why", "fix")],
            separator=_SEP,
        ),
    )
    flagged = summary.filter(pl.col("status") != "passed").height
    group = pl.when(pl.col("status") == "passed")
    summary = summary.with_columns(
        group=group.then(pl.lit(f"Passed ({summary.height - flagged:,})")).otherwise(
            pl.lit(f"Flagged something ({flagged:,})")
        )
    )
    columns = ["label", "rule", "frame", "about", "checked", "passed", "failed", "failed_fraction"]
    data = summary.select(*columns, "status", "fg", "bg", "group")
    table = (
        _styled(GT(data, groupname_col="group", id="gt-summary"))
        .cols_hide(["status", "fg", "bg"])
        .cols_label(
            label="Status",
            rule="Rule",
            frame="Frame",
            about="What is checked · why it matters · how to fix",
            checked="Checked",
            passed="Passed",
            failed="Failed",
            failed_fraction="Share failed",
        )
        .fmt(_about_cell, columns="about")
        .fmt_integer(columns=["checked", "passed", "failed"])
        .cols_align("center", columns="label")
        .cols_width(
            {
                "label": "7%",
                "rule": "7%",
                "frame": "9%",
                "about": "43%",
                "checked": "7%",
                "passed": "7%",
                "failed": "7%",
                "failed_fraction": "13%",
            }
        )
        .tab_style(
            [style.fill(color=pl.col("bg")), style.text(color=pl.col("fg"), weight="bold")],
            loc.body(columns="label"),
        )
        .tab_style(style.text(weight="bold"), loc.body(columns="failed", rows=pl.col("failed") > 0))
        .tab_style(style.text(whitespace="nowrap"), loc.body(columns=["rule", "frame"]))
        .tab_style(  # passed rules stay listed, but quieter than the ones that need work
            style.text(color="#667085"),
            loc.body(columns=columns[1:], rows=pl.col("status") == "passed"),
        )
    )
    for status, colours in PALETTE.items():
        table = table.fmt(
            _bar_cell(colours["bar"]),
            columns="failed_fraction",
            rows=pl.col("status") == status,
        )
    if anchors:
        table = table.fmt(
            lambda code: f'<a href="#{anchors[code]}">{escape(str(code))}</a>',
            columns="rule",
            rows=pl.col("rule").is_in(list(anchors)),
        )
    return table


_SEP = "\x1f"


def _palette_expr(key: str) -> pl.Expr:
    return pl.col("status").replace_strict(
        {s: p[key] for s, p in PALETTE.items()}, default=PALETTE["error"][key]
    )


def _about_cell(text: Any) -> str:
    """Title in bold, then why and fix as smaller lines; every part escaped."""
    title, why, fix = ([*str(text or "").split(_SEP), "", ""])[:3]
    parts = [f'<div style="font-weight:600">{escape(title)}</div>']
    if why:
        parts.append(f'<div style="color:#475467;font-size:13px">{escape(why)}</div>')
    if fix:
        parts.append(f'<div style="color:#475467;font-size:13px"><b>Fix:</b> {escape(fix)}</div>')
    return "".join(parts)


def _bar_cell(colour: str) -> Callable[[Any], str]:
    """A horizontal bar of the failed share, drawn with CSS (no script, no image)."""

    def bar(fraction: Any) -> str:
        if fraction is None:
            return '<span style="color:#98a2b3">—</span>'
        percent = max(0.0, min(100.0, float(fraction) * 100))
        width = 0.0 if percent == 0 else max(percent, 2.0)  # a failure is never invisible
        text = "0%" if percent == 0 else "<0.1%" if percent < 0.1 else f"{percent:.1f}%"
        return (
            '<div style="display:flex;align-items:center;gap:8px">'
            '<div style="flex:1;height:10px;background:#eaecf0;border-radius:5px;overflow:hidden">'
            f'<div style="width:{width:.1f}%;height:100%;background:{colour}"></div></div>'
            f'<span style="min-width:44px;text-align:right;font-size:13px">{escape(text)}</span>'
            "</div>"
        )

    return bar


# ---------------------------------------------------------------------------------------------
# Extracts of failing rows


def extract_section(
    rule_row: dict[str, Any], rows: pl.DataFrame, *, total: int, anchor: str
) -> str:
    """One failing rule: heading, why/fix, how many rows are hidden, and the capped table."""
    colours = PALETTE.get(rule_row["status"], PALETTE["error"])
    shown = rows.height
    cap_text = (
        f"All {count_phrase(total, 'flagged row')} shown."
        if shown >= total
        else f"Showing {shown:,} of {total:,} flagged rows; "
        f"{total - shown:,} more are in the full list in the issues CSV."
    )
    pill = (
        f'<span class="pill" style="background:{colours["bg"]};color:{colours["fg"]};'
        f'border:1px solid {colours["bar"]}">{escape(colours["label"])}</span>'
    )
    return (
        f'<section class="card extract" id="{anchor}">'
        '<a class="back" href="#rules">back to the rule summary ↑</a>'
        f"<h3>{pill}<code>{escape(str(rule_row['rule']))}</code> · "
        f"{escape(str(rule_row.get('title') or ''))}</h3>"
        f'<p class="hint muted">{escape(str(rule_row.get("frame") or ""))} · '
        f"{escape(str(rule_row.get('why') or ''))}</p>"
        f'<p class="hint"><b>How to fix:</b> {escape(str(rule_row.get("fix") or ""))}</p>'
        f'<p class="cap">{escape(cap_text)}</p>'
        f"{html_of(extract_gt(rows, anchor=anchor, colours=colours))}</section>"
    )


def extract_gt(rows: pl.DataFrame, *, anchor: str, colours: dict[str, str]) -> GT:
    """The failing rows of one rule, the bad cell highlighted in the rule's severity colour."""
    keys = [k for k in ALL_KEYS if k in rows.columns and rows[k].null_count() < rows.height]
    columns = ["line", "file", "record_id", *keys, "column", "value", "message"]
    highlight = [style.fill(color=colours["bg"]), style.text(color=colours["fg"], weight="bold")]
    table = (
        # Formatting in polars, not in great-tables formatters: these run once per cell.
        _styled(GT(rows.select(pl.col(columns).cast(pl.String).fill_null("—")), id=f"gt-{anchor}"))
        .cols_label(
            line="Line",
            file="File",
            record_id="Record id",
            column="Column",
            value="Value",
            message="What is wrong",
            **{key: KEY_LABELS[key] for key in keys},
        )
        .cols_align("right", columns="line")
        .tab_style(highlight, loc.body(columns="value"))
        .tab_style(highlight, loc.body(columns="record_id", rows=pl.col("column") == "id"))
        .tab_style(style.text(whitespace="nowrap"), loc.body(columns=["line", "file", "record_id"]))
    )
    for key in keys:
        table = table.tab_style(highlight, loc.body(columns=key, rows=pl.col("column") == key))
    return table


# ---------------------------------------------------------------------------------------------
# great-tables plumbing


def _styled(table: GT) -> GT:
    """The house style shared by every table of the report."""
    return table.tab_options(
        table_font_size="14px",
        table_width="100%",
        column_labels_font_weight="bold",
        column_labels_font_size="12px",
        column_labels_text_transform="uppercase",
        column_labels_background_color="#f9fafb",
        table_border_top_style="none",
        table_body_hlines_color="#eaecf0",
        data_row_padding="7px",
        row_group_font_weight="bold",
        row_group_background_color="#f2f4f7",
        container_padding_y="4px",
    )


_IMPORT = re.compile(r"@import\s+url\([^)]*\)\s*;?", re.IGNORECASE)


def html_of(table: GT) -> str:
    """The table's HTML fragment, with any web-font import removed so the page stays offline."""
    return _IMPORT.sub("", table.as_raw_html())


# ---------------------------------------------------------------------------------------------
# Whole documents


def render_html_report(result: Any, *, extract_rows: int = DEFAULT_EXTRACT_ROWS) -> str:
    """The standalone HTML report of an audit: verdict, context, rule summary, failing rows."""
    summary = ordered_summary(result.summary)
    failing = summary.filter(pl.col("status") != "passed")
    issue_totals = dict(result.issues.group_by("rule").len().iter_rows())
    with_rows = [rule for rule in failing["rule"].to_list() if issue_totals.get(rule, 0) > 0]
    anchors = anchor_ids(with_rows)
    extracts = extract_frames(result, with_rows, cap=extract_rows)
    sections = [
        extract_section(
            row, extracts[row["rule"]], total=issue_totals[row["rule"]], anchor=anchors[row["rule"]]
        )
        for row in failing.iter_rows(named=True)
        if row["rule"] in extracts
    ]
    passed = summary.height - failing.height
    title = f"Billing data validation — {str(result.verdict).upper()}"
    body = "".join(
        [
            "<header><h1>Billing data validation report</h1>",
            f'<p class="muted">{escape(_subtitle(result))}</p></header>',
            verdict_block(result),
            f'<section class="card"><h3>How to read this report</h3><p>{escape(HOW_TO_READ)}</p>'
            "</section>",
            '<h2 id="context">What was checked</h2>',
            context_block(result),
            '<h2 id="rules">Rules</h2>',
            f'<p class="muted">{escape(_rules_line(failing.height, passed))}</p>',
            html_of(summary_gt(result, anchors=anchors)),
            '<h2 id="extracts">Flagged rows, rule by rule</h2>' if sections else "",
            "".join(sections),
            '<footer class="muted" style="margin-top:40px;font-size:13px">',
            escape(
                "Made by fincome_toolkit. The issues CSV lists every flagged row; the failing-"
                "records CSVs hold the source records to correct, with the rules that hit them."
            ),
            "</footer>",
        ]
    )
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{PAGE_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def render_summary_html(result: Any) -> str:
    """The verdict and the rule summary as a light HTML fragment for notebooks (no extracts)."""
    summary = result.summary
    failing = summary.filter(pl.col("status") != "passed").height
    return (
        '<div class="fincome-audit" style="font-family:-apple-system,BlinkMacSystemFont,'
        "'Segoe UI',Roboto,Arial,sans-serif\">"
        f"{verdict_block(result)}"
        f'<p style="color:#667085;margin:4px 0">'
        f"{escape(_rules_line(failing, summary.height - failing))}</p>"
        f"{html_of(summary_gt(result))}</div>"
    )


def _subtitle(result: Any) -> str:
    context = result.context or {}
    parts = [f"fincome_toolkit {context.get('version') or '?'}"]
    if context.get("generated_at"):
        parts.append(f"audit run at {context['generated_at']}")
    if context.get("as_of"):
        parts.append(f"data as of {context['as_of']}")
    return " · ".join(parts)


def _rules_line(failing: int, passed: int) -> str:
    return (
        f"{count_phrase(failing + passed, 'rule')} checked: {failing:,} flagged something, "
        f"{passed:,} passed."
    )
