"""The uploader over real HTTP on loopback against the sandbox: order, faults, resume, conflicts."""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal

import httpx
import polars as pl
import pytest
from upload_builders import (
    assert_fincome_holds_exactly,
    make_dataset,
    settled_stats,
    stored_ids,
    with_values,
)

from fincome_toolkit.audit import audit
from fincome_toolkit.client import FincomeClient
from fincome_toolkit.contract import build_payloads, canonical_json
from fincome_toolkit.errors import ApiError
from fincome_toolkit.frames import FIELDS, Dataset
from fincome_toolkit.http_pool import ShardedTransport
from fincome_toolkit.journal import Journal
from fincome_toolkit.retry import RetryPolicy
from fincome_toolkit.sandbox import sandbox
from fincome_toolkit.upload import run_upload, upload
from fincome_toolkit.upload_plan import dry_run, plan_upload

FAST = RetryPolicy(base_delay=0.01, max_delay=0.05, seed=1)
AS_OF = "2025-01-01"


def send(box, dataset: Dataset, journal, **options):
    """Upload to a running sandbox with a fast retry policy."""
    options.setdefault("retry", FAST)
    return run_upload(
        dataset, settings=box.contract(), api_key=box.api_key, journal=journal, **options
    )


# --- the plan (no network) ----------------------------------------------------------------------


def test_the_plan_orders_the_hierarchy_and_holds_what_cannot_be_sent():
    dataset = make_dataset(6, invoices_per_subscription=1)
    dataset = with_values(dataset, "customers", "C-0005", root_parent_id="C-0099")
    plan = plan_upload(dataset)
    order = plan.to_send().select("entity", "record_id", "depth").rows()
    customers = [(rid, depth) for entity, rid, depth in order if entity == "customers"]
    assert customers == [("C-0000", 0), ("C-0004", 0), ("C-0001", 1), ("C-0002", 2), ("C-0003", 3)]
    assert [entity for entity, _, _ in order] == sorted(
        (entity for entity, _, _ in order), key=["customers", "subscriptions", "invoices"].index
    )
    held = dict(
        plan.records.filter(pl.col("action") == "held_back").select("record_id", "reason").rows()
    )
    assert held == {
        "C-0005": "refers to customer C-0099, which is neither in this export nor already in "
        "Fincome",
        "S-0005": "waiting on customer C-0005, which is held back: refers to customer C-0099, "
        "which is neither in this export nor already in Fincome",
        "I-0005-0": "waiting on customer C-0005, which is held back: refers to customer C-0099, "
        "which is neither in this export nor already in Fincome",
    }
    forced = plan_upload(dataset, force=True)
    assert forced.records.filter(pl.col("action") == "held_back").is_empty()


def test_the_plan_holds_parent_cycles_missing_ids_and_clashing_duplicates():
    dataset = make_dataset(4, invoices_per_subscription=0)
    dataset = with_values(dataset, "customers", "C-0000", root_parent_id="C-0003")
    extra = dataset.customers.filter(pl.col("id") == "C-0002").with_columns(
        name=pl.lit("Another name"), source_line=pl.lit(99, pl.Int64)
    )
    same = dataset.subscriptions.filter(pl.col("id") == "S-0001")
    no_id = same.with_columns(id=pl.lit(None, pl.String), source_line=pl.lit(50, pl.Int64))
    dataset = Dataset(
        customers=pl.concat([dataset.customers, extra]),
        subscriptions=pl.concat([dataset.subscriptions, same, no_id]),
        invoices=dataset.invoices,
    )
    records = plan_upload(dataset).records
    reasons = {
        (row["entity"], row["record_id"], row["source_line"]): (row["action"], row["reason"])
        for row in records.iter_rows(named=True)
    }
    assert reasons[("customers", "C-0000", 2)][1].startswith("its chain of parents")
    assert reasons[("customers", "C-0002", 99)] == (
        "held_back",
        "id C-0002 appears on lines 4, 99 with different content; keep one row per id",
    )
    assert reasons[("subscriptions", None, 50)][1].startswith("the row has no id")
    # An exact repeat is one record, sent once.
    assert records.filter(pl.col("record_id") == "S-0001").height == 1
    assert all(action == "held_back" for action, _ in reasons.values() if action != "send")
    assert not any(action == "send" for action, _ in reasons.values())  # all in the cycle


def test_dry_run_writes_the_exact_payloads_and_the_plan_without_network(tmp_path):
    dataset = make_dataset(5)
    dataset = with_values(dataset, "invoices", "I-0001-0", customer_id="C-0002")  # audit error
    checked = audit(dataset, as_of=AS_OF)
    plan = dry_run(dataset, tmp_path / "dry", audit=checked)
    for entity in FIELDS:
        lines = (tmp_path / "dry" / f"{entity}.ndjson").read_text(encoding="utf-8").splitlines()
        to_send = plan.to_send().filter(pl.col("entity") == entity)
        expected = [
            canonical_json(build_payloads(entity, dataset.frame(entity))[row])
            for row in to_send.get_column("row")
        ]
        assert lines == expected
        assert all(json.loads(line)["id"] for line in lines)
    written = pl.read_csv(tmp_path / "dry" / "plan.csv")
    assert written.height == 5 + 5 + 15
    held = written.filter(pl.col("action") == "held_back").row(0, named=True)
    assert held["record_id"] == "I-0001-0"
    assert held["reason"].startswith("error issues in the audit: INV-007:")
    assert held["source_file"] == "invoices.csv"
    summary = json.loads((tmp_path / "dry" / "plan.json").read_text())
    assert {row["entity"]: row["held_back"] for row in summary["counts"]}["invoices"] == 1


# --- uploads against the sandbox -------------------------------------------------------------


def test_an_upload_read_back_equals_the_source(tmp_path):
    dataset = make_dataset(12)
    events = []
    with sandbox() as box:
        result = send(box, dataset, tmp_path / "j.sqlite", progress=events.append)
        assert result.exit_code == 0
        assert result.count("acknowledged") == 12 + 12 + 36
        assert_fincome_holds_exactly(box, dataset)
    assert events[0].done == 0
    assert events[-1].done == events[-1].total == 60
    assert [e.done for e in events] == sorted(e.done for e in events)


def test_faults_drops_and_rate_limits_still_give_an_exact_upload(tmp_path):
    dataset = make_dataset(25)
    faults = dict(fail_rate=0.2, drop_rate=0.1, rate_limit=40, duplicate_policy="conflict")
    with sandbox(seed=3, **faults) as box:
        result = send(box, dataset, tmp_path / "j.sqlite", concurrency=8)
        stats = settled_stats(box, at_least=result.requests)
        assert result.problems().is_empty(), result.problems()
        assert result.count("acknowledged") == 25 + 25 + 75
        assert_fincome_holds_exactly(box, dataset)
    # The faults really happened, and the uploader came through each kind.
    assert stats["faults"]["failed"] > 10
    assert stats["faults"]["dropped"] > 5
    assert stats["faults"]["rate_limited"] > 0
    assert stats["by_route"]["GET /invoices/{id}"]["200"] > 0  # lost answers resolved by A4
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.counts().rows() == [
            ("customers", "acknowledged", 25),
            ("invoices", "acknowledged", 75),
            ("subscriptions", "acknowledged", 25),
        ]


def test_a_second_run_sends_nothing_and_a_changed_record_only_that_one(tmp_path):
    dataset = make_dataset(6)
    with sandbox() as box:
        first = send(box, dataset, tmp_path / "j.sqlite")
        before = settled_stats(box, at_least=first.requests)["requests"]
        again = send(box, dataset, tmp_path / "j.sqlite")
        assert (again.requests, settled_stats(box)["requests"]) == (0, before)
        assert again.count("skipped") == again.records.height == 6 + 6 + 18
        assert again.exit_code == 0
        changed = with_values(dataset, "customers", "C-0002", name="Renamed SAS")
        third = send(box, changed, tmp_path / "j.sqlite")
        assert third.count("acknowledged") == 1
        assert third.count("skipped") == 29
        assert settled_stats(box, at_least=before + 1)["requests"] == before + 1
        assert_fincome_holds_exactly(box, changed)


def test_records_left_in_flight_are_sent_again(tmp_path):
    dataset = make_dataset(2, invoices_per_subscription=1)
    with sandbox(duplicate_policy="conflict") as box:
        first = send(box, dataset, tmp_path / "j.sqlite")
        with Journal(tmp_path / "j.sqlite") as journal:  # as if killed during a resend
            journal.mark_pending("invoices", [("I-0001-0", "some-older-hash")])
            journal.mark_sent("invoices", "I-0001-0")
        result = send(box, dataset, tmp_path / "j.sqlite")
        assert result.count("acknowledged") == 1
        row = result.records.filter(pl.col("outcome") == "acknowledged").row(0, named=True)
        assert (row["record_id"], row["detail"]) == (
            "I-0001-0",
            "already in Fincome with the same content",
        )
        stats = settled_stats(box, at_least=first.requests + result.requests)
        assert stats["by_route"]["POST /invoices"] == {"201": 2, "409": 1}
        assert sorted(stored_ids(box, "invoices")) == ["I-0000-0", "I-0001-0"]  # once each


def test_a_409_is_resolved_by_reading_the_stored_record(tmp_path):
    dataset = make_dataset(3, invoices_per_subscription=2)
    changed = with_values(dataset, "invoices", "I-0001-1", amount_excluding_tax=Decimal("999.5"))
    with sandbox(duplicate_policy="conflict") as box:
        first = send(box, dataset, tmp_path / "first.sqlite")
        # A lost journal: same content → acknowledged after GET, nothing duplicated or patched.
        same = send(box, dataset, tmp_path / "second.sqlite")
        assert same.count("acknowledged") == 12
        stats = settled_stats(box, at_least=first.requests + same.requests)
        assert stats["by_route"]["GET /invoices/{id}"] == {"200": 6}
        assert "PATCH /invoices/{id}" not in stats["by_route"]
        # Different content, updates not allowed → a reported conflict; Fincome unchanged.
        conflict = send(box, changed, tmp_path / "third.sqlite")
        sent = first.requests + same.requests + conflict.requests
        assert conflict.exit_code == 1
        row = conflict.problems().row(0, named=True)
        assert (row["record_id"], row["outcome"], row["http_status"]) == (
            "I-0001-1",
            "conflict",
            409,
        )
        assert "amount_excluding_tax is '999.50' here but '101.01' in Fincome" in row["detail"]
        assert (row["source_file"], row["source_line"]) == ("invoices.csv", 5)
        # Allowed: the stored record is updated (PATCH), once.
        updated = send(box, changed, tmp_path / "third.sqlite", allow_updates=True)
        assert updated.exit_code == 0
        stats = settled_stats(box, at_least=sent + updated.requests)
        assert stats["by_route"]["PATCH /invoices/{id}"] == {"202": 1}
        assert_fincome_holds_exactly(box, changed)


def test_a_rejected_record_holds_back_what_references_it(tmp_path):
    dataset = with_values(make_dataset(4), "customers", "C-0002", email="not-an-email")
    with sandbox() as box:
        result = send(box, dataset, tmp_path / "j.sqlite", audit=audit(dataset, as_of=AS_OF))
        requests = settled_stats(box, at_least=result.requests)["requests"]
        problems = {row["record_id"]: row for row in result.problems().iter_rows(named=True)}
        assert problems["C-0002"]["outcome"] == "rejected"
        assert problems["C-0002"]["http_status"] == 422
        assert problems["C-0002"]["detail"].startswith("email:")
        assert problems["C-0002"]["source_line"] == 4
        held = {rid for rid, row in problems.items() if row["outcome"] == "held_back"}
        assert held == {"C-0003", "S-0002", "S-0003"} | {
            f"I-000{i}-{k}" for i in (2, 3) for k in range(3)
        }
        assert problems["S-0002"]["detail"].startswith(
            "waiting on customer C-0002, which was rejected: email:"
        )
        assert "C-0002" not in stored_ids(box, "customers")
        assert "I-0003-0" not in stored_ids(box, "invoices")
        # Not re-sent unchanged, unless asked.
        again = send(box, dataset, tmp_path / "j.sqlite")
        assert settled_stats(box)["requests"] == requests
        assert again.records.filter(pl.col("record_id") == "C-0002")["outcome"].item() == (
            "rejected"
        )
        retried = send(box, dataset, tmp_path / "j.sqlite", retry_rejected=True)
        assert settled_stats(box, at_least=requests + 1)["requests"] == requests + 1
        assert retried.count("rejected") == 1


def test_audit_errors_are_held_back_with_their_messages_and_force_sends_them(tmp_path):
    dataset = with_values(make_dataset(3), "invoices", "I-0001-0", customer_id="C-0002")
    checked = audit(dataset, as_of=AS_OF)
    with sandbox() as box:
        held = send(box, dataset, tmp_path / "j.sqlite", audit=checked)
        row = held.problems().row(0, named=True)
        assert held.problems().height == 1
        assert (row["record_id"], row["outcome"]) == ("I-0001-0", "held_back")
        assert row["detail"].startswith("error issues in the audit: INV-007: invoice customer")
        assert "I-0001-0" not in stored_ids(box, "invoices")
        forced = send(box, dataset, tmp_path / "j.sqlite", audit=checked, force=True)
        assert (forced.count("acknowledged"), forced.count("skipped")) == (1, 14)
        assert "I-0001-0" in stored_ids(box, "invoices")


def test_a_wrong_key_stops_at_once_with_one_clear_message(tmp_path):
    dataset = make_dataset(30)
    with sandbox() as box:
        with pytest.raises(ApiError) as raised:
            run_upload(
                dataset,
                settings=box.contract(),
                api_key="wrong-key-123",
                journal=tmp_path / "j.sqlite",
                concurrency=16,
            )
        assert settled_stats(box, at_least=1)["by_status"] == {"401": 1}
    message = raised.value.message
    assert "refused the API key (HTTP 401)" in message
    assert "FINCOME_API_KEY" in message
    assert "wrong-key-123" not in message


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    with sandbox() as box:
        url = box.base_url  # a port nobody listens on once the sandbox is gone
    with pytest.raises(
        ApiError, match=r"could not be reached \(3 attempts\); last error: .*Connect"
    ):
        run_upload(
            make_dataset(3),
            settings=box.contract().replace(base_url=url),
            api_key="any",
            journal=tmp_path / "j.sqlite",
            retry=RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02),
        )


def test_the_key_is_never_written_anywhere(tmp_path, caplog, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default journal (.fincome/...) lands here
    secret = "sk-live-TOPSECRET-4c1d"
    dataset = with_values(make_dataset(4), "customers", "C-0001", email="not-an-email")
    caplog.set_level(logging.DEBUG)
    with sandbox(api_key=secret, fail_rate=0.2, drop_rate=0.1, seed=5) as box:
        result = send(box, dataset, tmp_path / "j.sqlite")
        dry_run(dataset, tmp_path / "dry")
        with pytest.raises(ApiError) as raised:
            run_upload(dataset, settings=box.contract(), api_key=secret + "x")
    result.write_csv(tmp_path / "all.csv", problems_only=False)
    assert result.count("rejected") == 1
    texts = [result._repr_html_(), str(raised.value), caplog.text, *capfd.readouterr()]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name.startswith("j.sqlite") for path in files)
    assert any(path.parent.name == ".fincome" for path in files)  # the default journal
    for blob in [*(path.read_bytes() for path in files), *(t.encode() for t in texts)]:
        assert secret.encode() not in blob


def test_results_render_escaped_html_and_a_csv_tied_to_source_lines(tmp_path):
    dataset = with_values(make_dataset(3), "customers", "C-0001", email="not-an-email")
    dataset = with_values(dataset, "customers", "C-0002", root_parent_id="<script>x</script>")
    with sandbox() as box:
        result = send(box, dataset, tmp_path / "j.sqlite")
    html = result._repr_html_()
    assert "<script>" not in html
    assert "refers to customer &lt;script&gt;x&lt;/script&gt;, which is neither" in html
    assert result._mime_() == ("text/html", html)
    written = pl.read_csv(result.write_csv(tmp_path / "problems.csv"))
    assert written.columns == list(result.records.columns)
    assert set(written["outcome"]) == {"rejected", "held_back"}
    assert written.filter(pl.col("outcome") == "rejected")["source_line"].to_list() == [3]
    everything = pl.read_csv(result.write_csv(tmp_path / "all.csv", problems_only=False))
    assert everything.height == 3 + 3 + 9
    counts = result.counts().filter(pl.col("entity") == "total").row(0, named=True)
    assert counts["records"] == 15
    assert (counts["acknowledged"], counts["rejected"], counts["held_back"]) == (5, 1, 9)


def test_upload_is_async_and_takes_its_client_and_journal(tmp_path):
    dataset = make_dataset(3)

    async def go(box) -> int:
        async with FincomeClient(box.contract(), api_key=box.api_key) as client:
            with Journal(tmp_path / "j.sqlite", base_url=box.base_url) as journal:
                result = await upload(dataset, client=client, journal=journal, concurrency=4)
                return result.count("acknowledged")

    with sandbox() as box:
        assert asyncio.run(go(box)) == 15


def test_retry_policy_backoff_is_capped_jittered_and_reproducible():
    policy = RetryPolicy(base_delay=1, max_delay=5, jitter=0.5, seed=42)
    first = [policy.backoff(n, rng) for rng in [policy.rng()] for n in range(1, 8)]
    second = [policy.backoff(n, rng) for rng in [policy.rng()] for n in range(1, 8)]
    assert first == second
    assert all(
        0.5 * min(5, 2 ** (n - 1)) <= d <= min(5, 2 ** (n - 1)) for n, d in enumerate(first, 1)
    )
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


def test_run_upload_also_works_where_an_event_loop_already_runs(tmp_path):
    dataset = make_dataset(2)

    async def notebook_cell(box):  # Jupyter runs cells inside a running event loop
        return send(box, dataset, tmp_path / "j.sqlite")

    with sandbox() as box:
        result = asyncio.run(notebook_cell(box))
    assert result.count("acknowledged") == 10


def test_the_sharded_pool_answers_every_request_and_frees_its_pools():
    async def burst(url: str, transport: ShardedTransport) -> list[int]:
        async with httpx.AsyncClient(base_url=url, transport=transport) as client:
            answers = await asyncio.gather(*(client.get("/_sandbox/stats") for _ in range(24)))
        return [answer.status_code for answer in answers]

    transport = ShardedTransport(8, per_pool=2)
    with sandbox() as box:
        assert asyncio.run(burst(box.base_url, transport)) == [200] * 24
    assert transport._busy == [0, 0, 0, 0]  # every answer read and closed released its pool
