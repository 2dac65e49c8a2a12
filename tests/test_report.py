"""The audit report: HTML (parsed, not grepped), JSON shape, issues CSV, failing records, terminal.

Most tests use a small hand-built audit result (`FakeAudit`, the attributes of audit.AuditResult),
so each expectation is visible in the fixture; the last ones run the real audit on generated data.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from fincome_toolkit.frames import Dataset, canonical_schema
from fincome_toolkit.report import (
    ISSUE_COLUMNS,
    json_summary,
    render_html_report,
    render_summary_html,
    summary_table,
    write_failing_records,
    write_html_report,
    write_issues_csv,
    write_json_summary,
    write_report,
)

XSS = "<script>alert(1)</script>"
WHY = "Fincome needs it & <img src=x onerror=alert(2)>"
CUSTOMERS_FILE = "exports/customers.csv"
SUBSCRIPTIONS_FILE = "exports/subscriptions.csv"


# ---------------------------------------------------------------------------------------------
# A small audit result, built by hand


@dataclass
class FakeAudit:
    """The attributes of `audit.AuditResult` that the report reads, nothing more."""

    dataset: Dataset
    issues: pl.DataFrame
    summary: pl.DataFrame
    verdict: str
    blocking: bool
    counts: dict[str, int]
    context: dict[str, Any] = field(default_factory=dict)

    def blocked_records(self) -> pl.DataFrame:
        errors = self.issues.filter(
            pl.col("severity") == "error", pl.col("record_id").is_not_null()
        )
        return errors.select("frame", "record_id").unique()

    def failing_records(self, frame: str) -> pl.DataFrame:
        hits = (
            self.issues.filter(pl.col("frame") == frame)
            .group_by("file", "line")
            .agg(rules=pl.col("rule").unique().sort(), messages=pl.col("message"))
        )
        return self.dataset.frame(frame).join(
            hits, left_on=["source_file", "source_line"], right_on=["file", "line"], how="inner"
        )


def customers(n: int) -> pl.DataFrame:
    """`n` customers from CUSTOMERS_FILE, lines 2..n+1; customer 2's name is a script tag."""
    rows = [
        {
            "id": f"C{i}",
            "name": XSS if i == 2 else f"Customer {i}",
            "email": f"billing@c{i}.example" if i != 3 else "not-an-email",
            "country": "FR",
            "custom_properties": "{}",
            "source_file": CUSTOMERS_FILE,
            "source_line": i + 1,
        }
        for i in range(1, n + 1)
    ]
    return pl.DataFrame(rows, schema=canonical_schema("customers"))


def subscriptions() -> pl.DataFrame:
    rows = [
        {
            "id": f"S{i}",
            "customer_id": f"C{i}",
            "plan_id": "pro",
            "status": "active",
            "start_date": date(2024, 1, 1),
            "interval_unit": "month",
            "interval_count": 1,
            "quantity": 1,
            "amount_excluding_tax": Decimal("-5.00") if i == 1 else Decimal("99.00"),
            "currency": "EUR",
            "custom_properties": "{}",
            "source_file": SUBSCRIPTIONS_FILE,
            "source_line": i + 1,
        }
        for i in range(1, 4)
    ]
    return pl.DataFrame(rows, schema=canonical_schema("subscriptions"))


def issue(rule, severity, frame, record_id, file, line, column, value, message) -> dict:
    return dict(
        zip(
            ISSUE_COLUMNS,
            (rule, severity, frame, record_id, file, line, column, value, message),
            strict=True,
        )
    )


RULES = [
    # rule, severity, frame, title, checked
    ("CUS001", "error", "customers", "Customer name is missing or unsafe", 120),
    ("CUS002", "warning", "customers", "Email address looks invalid", 120),
    ("SUB004", "error", "subscriptions", "Subscription amount is zero or negative", 3),
    ("INV001", "error", "invoices", "Invoice id appears twice", 0),
    ("CUS009", "info", "customers", "Customer has no subscription", 120),
]


def fake_audit(*, many_name_issues: int = 1, verdict: str = "fail") -> FakeAudit:
    """An audit of 120 customers and 3 subscriptions with a known set of issue rows."""
    dataset = Dataset(customers=customers(120), subscriptions=subscriptions())
    rows = [
        issue("CUS001", "error", "customers", "C2", CUSTOMERS_FILE, 3, "name", XSS, "unsafe name")
    ]
    rows += [
        issue("CUS001", "error", "customers", f"C{i}", CUSTOMERS_FILE, i + 1, "name", "x", "short")
        for i in range(4, 3 + many_name_issues)
    ]
    rows += [
        issue(
            "CUS002",
            "warning",
            "customers",
            "C3",
            CUSTOMERS_FILE,
            4,
            "email",
            "not-an-email",
            "no @ in the address",
        ),
        issue(
            "SUB004",
            "error",
            "subscriptions",
            "S1",
            SUBSCRIPTIONS_FILE,
            2,
            "amount_excluding_tax",
            "-5.00",
            "amount must be positive",
        ),
    ]
    issues = pl.DataFrame(rows, schema={c: pl.String for c in ISSUE_COLUMNS} | {"line": pl.Int64})
    failed = issues.group_by("rule").len(name="failed")
    summary = (
        pl.DataFrame(RULES, schema=["rule", "severity", "frame", "title", "checked"], orient="row")
        .with_columns(why=pl.lit(WHY), fix=pl.lit("Correct it in the ERP."))
        .join(failed, on="rule", how="left", maintain_order="left")
        .with_columns(pl.col("failed").fill_null(0).cast(pl.Int64))
        .with_columns(
            failed_fraction=pl.when(pl.col("checked") > 0).then(
                pl.col("failed") / pl.col("checked")
            ),
            status=pl.when(pl.col("failed") > 0)
            .then(pl.col("severity"))
            .otherwise(pl.lit("passed")),
        )
    )
    counts = {
        s: issues.filter(pl.col("severity") == s).height for s in ("error", "warning", "info")
    }
    context = {
        "files": [
            {
                "frame": "customers",
                "path": CUSTOMERS_FILE,
                "sha256": "ab" * 32,
                "format": "csv",
                "rows": 120,
            },
            {
                "frame": "subscriptions",
                "path": SUBSCRIPTIONS_FILE,
                "sha256": "cd" * 32,
                "format": "csv",
                "rows": 3,
            },
        ],
        "rows": {"customers": 120, "subscriptions": 3, "invoices": 0},
        "version": "0.1.0",
        "generated_at": "2025-06-01T10:00:00+00:00",
        "as_of": "2025-05-31",
    }
    return FakeAudit(dataset, issues, summary, verdict, verdict == "fail", counts, context)


# ---------------------------------------------------------------------------------------------
# Reading HTML the way a browser would


class Page(HTMLParser):
    """Collects elements, ids, links, table rows and text of an HTML document."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.ids: set[str] = set()
        self.texts: list[str] = []
        self.style_texts: list[str] = []
        self._in_style = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if "id" in attributes:
            self.ids.add(attributes["id"])
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.style_texts if self._in_style else self.texts).append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())

    def elements(self, tag: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag]


class TableRows(HTMLParser):
    """The body rows of the great-tables table with a given id: a list of cell texts per row."""

    def __init__(self, text: str, table_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._target, self._depth, self._in_body = table_id, 0, False
        self.feed(text)
        # Row-group headings are rows of one <th>: only rows with data cells count.
        self.rows = [[" ".join(cell.split()) for cell in row] for row in self.rows if row]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if dict(attrs).get("id") == self._target:
            self._depth = 1
        elif self._depth and tag == "div":
            self._depth += 1
        if self._depth and tag == "tbody":
            self._in_body = True
        if self._in_body and tag == "tr":
            self.rows.append([])
        if self._in_body and tag == "td":
            self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        if self._depth and tag == "div":
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._in_body and self.rows and self.rows[-1]:
            self.rows[-1][-1] += data


@pytest.fixture
def report_page(tmp_path: Path) -> tuple[FakeAudit, str, Page]:
    result = fake_audit(many_name_issues=80)
    path = write_html_report(result, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    return result, text, Page(text)


# ---------------------------------------------------------------------------------------------
# HTML report


def test_report_opens_with_the_verdict_and_counts(report_page):
    result, _, page = report_page
    assert page.text.index("FAIL") < page.text.index("How to read this report")
    assert f"{result.counts['error']:,} errors" in page.text
    assert "1 warning" in page.text and "0 info" in page.text
    assert "The upload is blocked until the errors are fixed: 81 records with errors" in page.text


def test_report_has_exactly_one_summary_row_per_rule_passed_included(report_page):
    result, text, _ = report_page
    rows = TableRows(text, "gt-summary").rows
    assert len(rows) == result.summary.height == len(RULES)
    codes = sorted(row[1] for row in rows)
    assert codes == sorted(rule for rule, *_ in RULES)
    statuses = {row[1]: row[0] for row in rows}
    assert statuses == {
        "CUS001": "Error",
        "CUS002": "Warning",
        "SUB004": "Error",
        "INV001": "Passed",
        "CUS009": "Passed",
    }
    assert rows[0][0] == "Error", "failing rules come first"


def test_report_shows_the_run_context(report_page):
    _, text, page = report_page
    files = TableRows(text, "gt-files").rows
    assert [row[1] for row in files] == [CUSTOMERS_FILE, SUBSCRIPTIONS_FILE]
    assert "ab" * 32 in page.text and "0.1.0" in page.text and "2025-05-31" in page.text


def test_report_escapes_data(report_page):
    _, _, page = report_page
    assert page.elements("script") == [], "a customer name must never become a script element"
    assert page.elements("img") == [], "rule texts are shown as text, never as markup"
    assert XSS in page.text
    assert WHY in page.text


def test_report_has_no_network_reference(report_page):
    _, _, page = report_page
    references = [
        value
        for _, attrs in page.tags
        for name, value in attrs.items()
        if name in ("src", "href", "action", "srcset", "poster", "data")
    ]
    assert references and all(ref.startswith("#") for ref in references)
    assert not page.elements("link") and not page.elements("img") and not page.elements("iframe")
    css = " ".join(page.style_texts).lower()
    assert "@import" not in css and "url(" not in css
    assert "http://" not in css and "https://" not in css


def test_summary_links_resolve_to_extracts(report_page):
    result, _, page = report_page
    links = [a["href"] for a in page.elements("a") if a["href"] != "#rules"]
    failing = result.summary.filter(pl.col("status") != "passed")["rule"].to_list()
    assert len(links) == len(failing) == 3
    assert all(link[1:] in page.ids for link in links)
    assert "rules" in page.ids, "extracts link back to the summary"


def test_capped_extract_says_how_many_rows_are_hidden(tmp_path):
    result = fake_audit(many_name_issues=80)
    text = write_html_report(result, tmp_path / "r.html", extract_rows=50).read_text()
    page = Page(text)
    assert "Showing 50 of 80 flagged rows; 30 more are in the full list in the issues CSV" in (
        page.text
    )
    assert "All 1 flagged row shown." in page.text
    extract = TableRows(text, "gt-extract-CUS001").rows
    assert len(extract) == 50
    assert extract[0][:4] == ["3", "customers.csv", "C2", XSS], "business keys next to the row"


def test_extract_highlights_the_bad_cell(report_page):
    _, text, _ = report_page
    table = text[text.index('id="gt-extract-CUS002"') :]
    table = table[: table.index("</table>")]
    email_cell = Page(table).elements("td")[4]
    assert email_cell["headers"].endswith("-email") and "background-color" in email_cell.get(
        "style", ""
    )


def test_notebook_summary_is_a_light_fragment():
    result = fake_audit(many_name_issues=80)
    fragment = render_summary_html(result)
    page = Page(fragment)
    assert "FAIL" in page.text and XSS not in page.text, "no extracts in the notebook view"
    assert len(TableRows(fragment, "gt-summary").rows) == len(RULES)
    assert not page.elements("html") and not page.elements("script")


def test_passing_audit_reads_as_pass():
    result = fake_audit(verdict="pass")
    text = Page(render_html_report(result)).text
    assert "PASS" in text and "FAIL" not in text
    assert "records with errors will be held back from the upload" in text


# ---------------------------------------------------------------------------------------------
# Machine-readable outputs


def test_json_summary_has_exactly_the_agreed_shape(tmp_path):
    result = fake_audit()
    data = json.loads(write_json_summary(result, tmp_path / "s.json").read_text())
    assert data == json_summary(result)
    assert set(data) == {"verdict", "counts", "rules"}
    assert data["verdict"] == "fail"
    assert data["counts"] == {"error": 2, "warning": 1, "info": 0}
    assert len(data["rules"]) == len(RULES)
    assert all(
        set(rule) == {"rule", "severity", "frame", "checked", "failed"} for rule in data["rules"]
    )
    assert {
        "rule": "SUB004",
        "severity": "error",
        "frame": "subscriptions",
        "checked": 3,
        "failed": 1,
    } in data["rules"]


def test_issues_csv_has_exactly_the_issue_columns(tmp_path):
    result = fake_audit(many_name_issues=5)
    path = write_issues_csv(result, tmp_path / "issues.csv")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == ISSUE_COLUMNS
    assert len(rows) - 1 == result.issues.height
    assert rows[1][7:9] == [XSS, "unsafe name"]


def test_failing_records_hold_the_records_with_issues_and_nothing_else(tmp_path):
    result = fake_audit(many_name_issues=3)
    paths = write_failing_records(result, tmp_path / "failing")
    assert [p.name for p in paths] == [
        "failing_customers.csv",
        "failing_subscriptions.csv",
        "failing_invoices.csv",
    ]
    customers_out = pl.read_csv(paths[0], infer_schema=False)
    assert sorted(customers_out["id"].to_list()) == ["C2", "C3", "C4", "C5"]
    assert {"source_file", "source_line", "name", "email", "rules", "messages"} <= set(
        customers_out.columns
    )
    c2 = customers_out.filter(pl.col("id") == "C2").row(0, named=True)
    assert (c2["name"], c2["rules"], c2["source_line"]) == (XSS, "CUS001", "3")
    subscriptions_out = pl.read_csv(paths[1], infer_schema=False)
    assert subscriptions_out.select("id", "amount_excluding_tax").rows() == [("S1", "-5.00")]
    assert pl.read_csv(paths[2]).height == 0, "no failing invoice: a header-only file"


def test_write_report_writes_every_output(tmp_path):
    files = write_report(fake_audit(), tmp_path / "audit")
    assert [p.name for p in files.all()] == [
        "report.html",
        "summary.json",
        "issues.csv",
        "failing_customers.csv",
        "failing_subscriptions.csv",
        "failing_invoices.csv",
    ]
    assert all(p.is_file() for p in files.all())


def test_unwritable_output_is_an_analyst_error(tmp_path):
    from fincome_toolkit.errors import ConfigError

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="cannot write the report file"):
        write_json_summary(fake_audit(), blocker / "summary.json")


# ---------------------------------------------------------------------------------------------
# Terminal


def test_terminal_summary_lists_failed_rules_and_the_passed_count():
    console = Console(record=True, width=140, color_system=None)
    console.print(summary_table(fake_audit()))
    text = console.export_text()
    assert "FAIL — 2 errors, 1 warning, 0 info" in text
    for rule in ("CUS001", "CUS002", "SUB004"):
        assert rule in text
    assert "INV001" not in text and "CUS009" not in text
    assert "1 / 3" in text and "2 rules passed." in text


# ---------------------------------------------------------------------------------------------
# With the real audit engine


def assert_report_is_complete(result: Any, folder: Path) -> Page:
    """What must hold for any audit: the checks above, on a real AuditResult."""
    files = write_report(result, folder)
    text = files.html.read_text(encoding="utf-8")
    page = Page(text)
    assert str(result.verdict).upper() in page.text
    assert len(TableRows(text, "gt-summary").rows) == result.summary.height
    assert not page.elements("script") and not page.elements("img")
    links = [a["href"] for a in page.elements("a")]
    assert all(link.startswith("#") and link[1:] in page.ids for link in links)
    flagged = result.issues["rule"].n_unique()
    assert len({link for link in links if link != "#rules"}) == flagged

    data = json.loads(files.json.read_text())
    assert set(data) == {"verdict", "counts", "rules"} and len(data["rules"]) == len(result.summary)
    assert data["counts"] == {s: result.counts.get(s, 0) for s in ("error", "warning", "info")}
    issues = pl.read_csv(files.issues_csv, infer_schema=False)
    assert tuple(issues.columns) == ISSUE_COLUMNS and issues.height == result.issues.height

    for path in files.failing_records:
        frame = path.stem.removeprefix("failing_")
        written = pl.read_csv(path, infer_schema=False)
        with_issues = (
            result.issues.filter(pl.col("frame") == frame, pl.col("line").is_not_null())
            .select(pl.col("file").alias("source_file"), pl.col("line").cast(pl.String))
            .unique()
        )
        assert written.height == with_issues.height, frame
        lines = written.select("source_file", pl.col("source_line").alias("line")).unique()
        assert lines.sort(pl.all()).equals(with_issues.sort(pl.all())), frame
    return page


def test_real_audit_report_on_a_hand_built_dirty_set(tmp_path):
    from fincome_toolkit.audit import audit

    # C50 has no subscription (an info issue), and a name that must stay text.
    named = customers(120).with_columns(
        name=pl.when(pl.col("id") == "C50").then(pl.lit(XSS)).otherwise("name")
    )
    result = audit(Dataset(customers=named, subscriptions=subscriptions()), as_of="2025-06-30")
    page = assert_report_is_complete(result, tmp_path / "audit")
    assert XSS in page.text, "the unsafe customer name is listed, as text"
    assert result.verdict == "fail" and "FAIL" in page.text


def test_real_audit_report_on_a_generated_export(tmp_path):
    """The whole path: a dirty export written to disk, loaded, audited, reported."""
    from fincome_toolkit.audit import audit
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.sample import write_sample

    export = tmp_path / "export"
    generated = write_sample(export, customers=150, seed=3, defects=True)
    dataset = load_dataset(export, mapping=export / "mapping.toml")
    result = audit(dataset, as_of=generated.as_of)
    assert result.verdict == "fail"
    page = assert_report_is_complete(result, tmp_path / "audit")
    assert all(source.path.name in page.text for source in dataset.sources)


def test_extract_of_a_rule_over_several_frames_shows_each_records_keys():
    base = fake_audit()
    extra = pl.DataFrame(
        [
            issue("PARSE-001", "error", "customers", "C5", CUSTOMERS_FILE, 6, "country", "Frnce",
                  "unknown country"),
            issue("PARSE-001", "error", "subscriptions", "S2", SUBSCRIPTIONS_FILE, 3, "start_date",
                  "31/31/2024", "not a date"),
        ],
        schema=base.issues.schema,
    )  # fmt: skip
    parse_rule = base.summary.head(1).with_columns(
        rule=pl.lit("PARSE-001"), frame=pl.lit("all"), failed=pl.lit(2, pl.Int64)
    )
    result = replace(
        base,
        issues=pl.concat([base.issues, extra]),
        summary=pl.concat([base.summary, parse_rule]),
    )
    rows = TableRows(render_html_report(result), "gt-extract-PARSE-001").rows
    assert rows == [
        ["6", "customers.csv", "C5", "Customer 5", "billing@c5.example", "—", "—", "country",
         "Frnce", "unknown country"],
        ["3", "subscriptions.csv", "S2", "—", "—", "C2", "pro", "start_date", "31/31/2024",
         "not a date"],
    ]  # fmt: skip
