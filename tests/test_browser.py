"""The audit notebook as an analyst sees it: served by `marimo run`, opened in headless Chromium.

Playwright drives Debian's chromium (`.ci/install-chromium`); it cannot download a browser of its
own here. Without chromium the test is skipped on a developer machine, but under CI (env CI set)
a missing browser is a failure: the browser test must never silently stop running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SAMPLE_DATA = ROOT / "sample_data"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 60
RENDER_TIMEOUT_MS = 120_000  # the kernel loads and audits the sample before the first render


def _chromium_or_skip() -> Path:
    """The chromium binary; skip without it on a laptop, fail without it under CI."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(
            f"{CHROMIUM} is missing under CI: .ci/install-chromium should have installed it"
        )
    pytest.skip(f"{CHROMIUM} not installed (run `bash .ci/install-chromium` as root to enable)")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_served(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the server until it answers; fail with its log if it dies or never answers."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"marimo run exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    pytest.fail(f"marimo run did not answer on {url} within {SERVER_START_TIMEOUT_S}s")


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium (checked before the notebook server is started)."""
    return _chromium_or_skip()


@pytest.fixture
def served_notebook(chromium: Path, tmp_path: Path) -> Iterator[str]:
    """`marimo run notebooks/audit.py` on a free loopback port; yields its URL."""
    port = _free_port()
    log = tmp_path / "marimo.log"
    marimo = Path(sys.executable).with_name("marimo")
    command = [str(marimo), "run", str(NOTEBOOKS / "audit.py"), "--headless", "--no-token"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_served(url, process, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"marimo run log:\n{log.read_text(errors='replace')[-3000:]}")  # shown on failure


def _rule_with_few_failures() -> tuple[str, str, int]:
    """A rule that fails on the sample for a handful of records, one of those record ids, and
    how many issue rows the rule has. Taken from the library, so the test follows the sample."""
    from fincome_toolkit.audit import audit
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.sample import AS_OF

    result = audit(load_dataset(SAMPLE_DATA, mapping=SAMPLE_DATA / "mapping.toml"), as_of=AS_OF)
    per_rule = (
        result.issues.filter(pl.col("record_id").is_not_null())
        .group_by("rule")
        .agg(pl.col("record_id").sort().first(), pl.len().alias("n"))
        .filter(pl.col("n") <= 5)
        .sort("n", "rule")
    )
    assert per_rule.height > 0, "the dirty sample should fail some rule on a few records"
    rule, record_id = per_rule["rule"][0], per_rule["record_id"][0]
    return rule, record_id, result.issues.filter(pl.col("rule") == rule).height


def _screenshot(page: Page, name: str) -> Path:
    """The whole notebook (marimo scrolls inside the page, so grow the viewport first)."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
    )
    page.set_viewport_size({"width": 1400, "height": min(max(height, 1000), 16000)})
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})
    return path


def test_audit_notebook_renders_and_filters_by_rule(chromium: Path, served_notebook: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    rule, record_id, issue_rows = _rule_with_few_failures()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(served_notebook)
            # The verdict banner and the rule summary are rendered by the AuditResult itself.
            verdict = page.locator("section.verdict")
            expect(verdict).to_contain_text("FAIL", timeout=RENDER_TIMEOUT_MS)
            expect(page.get_by_text(rule, exact=True).first).to_be_attached()
            expect(page.get_by_role("heading", name="Browse the issues")).to_be_visible(
                timeout=RENDER_TIMEOUT_MS
            )
            overview = _screenshot(page, "audit_notebook.png")

            shown_before = page.get_by_text(record_id, exact=True).count()
            picker = page.get_by_test_id("marimo-plugin-dropdown").filter(
                has=page.locator("option", has_text=f"{rule} ·")
            )
            label = picker.locator("option", has_text=f"{rule} ·").text_content()
            picker.select_option(label=label)
            expect(page.get_by_text(f"{issue_rows:,} issue(s) match")).to_be_visible(timeout=60_000)
            # the rule's failing record is now listed (it was not among the rows shown before)
            expect(page.get_by_text(record_id, exact=True).first).to_be_visible()
            assert page.get_by_text(record_id, exact=True).count() > shown_before
            filtered = _screenshot(page, "audit_notebook_rule.png")
            print(f"screenshots: {overview} and {filtered}")
        finally:
            browser.close()
