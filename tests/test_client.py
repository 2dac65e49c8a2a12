"""The async client and `pull`, over real HTTP against the sandbox on loopback."""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from decimal import Decimal

import httpx
import polars as pl
import pytest
from click.testing import CliRunner

from fincome_toolkit.cli import main
from fincome_toolkit.client import FincomeClient, frame_from_records, pull, pull_sync
from fincome_toolkit.contract import ContractSettings, build_payloads
from fincome_toolkit.errors import ApiError, ConfigError
from fincome_toolkit.frames import FIELDS, Dataset, canonical_schema
from fincome_toolkit.sandbox import sandbox

SECRET = "wrong-k3y-do-not-print"


def canonical(entity: str, rows: list[dict]) -> pl.DataFrame:
    full = [
        {name: row.get(name) for name in FIELDS[entity]}
        | {"source_file": f"{entity}.csv", "source_line": line}
        for line, row in enumerate(rows, start=2)
    ]
    return pl.DataFrame(full, schema=canonical_schema(entity))


def sample_dataset() -> Dataset:
    customers = canonical(
        "customers",
        [
            {"id": "parent", "name": "Group SA", "country": "FR", "custom_properties": "{}"},
            {
                "id": "child/1",
                "name": "Filiale",
                "email": "a@b.fr",
                "country": "BE",
                "zip_code": "1000",
                "root_parent_id": "parent",
                "custom_properties": '{"segment": "smb", "score": 0.5}',
            },
        ],
    )
    subscriptions = canonical(
        "subscriptions",
        [
            {
                "id": "s1",
                "customer_id": "child/1",
                "plan_id": "pro",
                "status": "cancelled",
                "start_date": date(2024, 1, 1),
                "end_date": date(2025, 1, 1),
                "cancelled_at": date(2024, 11, 20),
                "interval_unit": "year",
                "interval_count": 1,
                "quantity": 3,
                "amount_excluding_tax": Decimal("99999999.99"),
                "currency": "EUR",
            }
        ],
    )
    invoices = canonical(
        "invoices",
        [
            {
                "id": f"inv-{n}",
                "customer_id": "child/1",
                "subscription_id": "s1",
                "issue_date": date(2024, 1, 1),
                "due_date": date(2024, 1, 31),
                "status": "paid",
                "type": "subscription",
                "period_start": date(2024, 1, 1),
                "period_end": date(2025, 1, 1),
                "amount_excluding_tax": amount,
                "tax_amount": Decimal("0.10"),
                "currency": "EUR",
                "custom_properties": '{"po": "A-1"}',
            }
            for n, amount in enumerate([Decimal("0.10"), Decimal("1234.5"), Decimal("0.29")])
        ]
        + [
            {
                "id": "one-off",
                "customer_id": "parent",
                "issue_date": date(2024, 6, 1),
                "status": "open",
                "type": "one_off",
                "amount_excluding_tax": Decimal("0"),
                "currency": "USD",
            }
        ],
    )
    return Dataset(customers=customers, subscriptions=subscriptions, invoices=invoices)


async def send_all(client: FincomeClient, dataset: Dataset) -> None:
    for entity, frame in dataset.frames().items():
        for payload in build_payloads(entity, frame):
            answer = await client.create(entity, payload)
            assert answer.status_code in (200, 201), answer.text


def test_create_get_update_return_the_raw_responses():
    async def scenario(running) -> None:
        async with FincomeClient(running.contract(), api_key=running.api_key) as client:
            created = await client.create("customers", {"id": "a b/c", "name": "Acme"})
            again = await client.create("customers", {"id": "a b/c", "name": "Acme"})
            fetched = await client.get("customers", "a b/c")
            updated = await client.update("customers", "a b/c", {"zip_code": "75001"})
            missing = await client.get("customers", "nobody")
            invalid = await client.create("customers", {"id": "x"})
        assert [r.status_code for r in (created, again, fetched, updated)] == [201, 200, 200, 202]
        assert updated.json()["zip_code"] == "75001" and updated.json()["name"] == "Acme"
        assert (missing.status_code, invalid.status_code) == (404, 422)

    with sandbox() as running:
        asyncio.run(scenario(running))


def test_listing_follows_cursors_over_more_records_than_one_page():
    async def scenario(running) -> list[dict]:
        settings = running.contract().replace(list_limit=7)
        async with FincomeClient(settings, api_key=running.api_key) as client:
            for number in range(20):
                await client.create("customers", {"id": f"c{number:02}", "name": "x"})
            return await client.list_all("customers")

    with sandbox() as running:
        listed = asyncio.run(scenario(running))
        assert [record["id"] for record in listed] == [f"c{n:02}" for n in range(20)]
        assert running.stats()["by_route"]["GET /customers"] == {"200": 3}


def test_listing_retries_transient_failures_and_lost_answers():
    async def scenario(running) -> list[dict]:
        settings = running.contract().replace(list_limit=3)
        async with FincomeClient(settings, api_key=running.api_key, read_attempts=12) as client:
            return await client.list_all("customers")

    with sandbox(fail_rate=0.3, drop_rate=0.2, seed=3) as running:
        for number in range(10):
            running.app.store.put("customers", {"id": f"c{number}", "name": "x"})
        listed = asyncio.run(scenario(running))
        assert [record["id"] for record in listed] == [f"c{n}" for n in range(10)]
        faults = running.stats()["faults"]
        assert faults.get("failed", 0) + faults.get("dropped", 0) > 0


def test_wrong_key_is_a_clear_api_error_that_never_shows_the_key(caplog):
    async def scenario(running) -> None:
        async with FincomeClient(running.contract(), api_key=SECRET) as client:
            assert SECRET not in repr(client)
            answer = await client.create("customers", {"id": "c1", "name": "x"})
            assert answer.status_code == 401
            await client.list_all("customers")

    caplog.set_level(logging.DEBUG)
    with sandbox() as running, pytest.raises(ApiError) as raised:
        asyncio.run(scenario(running))
    message = raised.value.message
    assert "401" in message and "FINCOME_API_KEY" in message
    assert SECRET not in message and SECRET not in repr(raised.value)
    assert SECRET not in caplog.text


def test_lost_answers_raise_transport_errors_without_the_key(caplog):
    async def scenario(running) -> None:
        async with FincomeClient(running.contract(), api_key=running.api_key) as client:
            await client.create("customers", {"id": "c1", "name": "x"})

    caplog.set_level(logging.DEBUG)
    with sandbox(drop_rate=1.0, api_key=SECRET) as running:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)) as raised:
            asyncio.run(scenario(running))
        assert [r["id"] for r in running.records("customers")] == ["c1"]
    assert SECRET not in str(raised.value) and SECRET not in repr(raised.value)
    assert SECRET not in caplog.text


def test_missing_key_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("FINCOME_API_KEY", raising=False)
    with pytest.raises(ConfigError) as raised:
        FincomeClient(ContractSettings())
    assert "FINCOME_API_KEY" in raised.value.message


def test_redact_hides_a_key_a_server_would_echo():
    client = FincomeClient(ContractSettings(), api_key="sk_live_s3cret")
    text = client.redact("bad key sk_live_s3cret for /customers")
    assert "sk_live_s3cret" not in text and "/customers" in text


def test_key_is_read_from_the_environment(monkeypatch):
    async def scenario(running) -> int:
        async with FincomeClient(running.contract()) as client:
            return (await client.create("customers", {"id": "c1", "name": "x"})).status_code

    with sandbox() as running:
        monkeypatch.setenv("FINCOME_API_KEY", running.api_key)
        assert asyncio.run(scenario(running)) == 201


def test_unreachable_api_is_an_api_error_for_reads():
    async def scenario(port: int) -> None:
        settings = ContractSettings(base_url=f"http://127.0.0.1:{port}")
        async with FincomeClient(settings, api_key="k", read_attempts=2) as client:
            await client.list_all("customers")

    with sandbox() as running:
        port = int(running.base_url.rsplit(":", 1)[1])
    with pytest.raises(ApiError, match="reachable"):
        asyncio.run(scenario(port))


def test_pull_round_trip_equals_what_was_sent_field_by_field():
    sent = sample_dataset()

    async def scenario(running) -> Dataset:
        async with FincomeClient(running.contract(), api_key=running.api_key) as client:
            await send_all(client, sent)
            return await pull(client)

    with sandbox() as running:
        pulled = asyncio.run(scenario(running))
    assert pulled.parse_issues.is_empty()
    for entity, frame in pulled.frames().items():
        assert frame.schema == canonical_schema(entity)
        assert frame.get_column("source_file").unique().to_list() == [f"api:/{entity}"]
        assert frame.get_column("source_line").to_list() == list(range(1, frame.height + 1))
        original = sent.frame(entity)
        assert build_payloads(entity, frame) == build_payloads(entity, original)
        fields = [name for name in FIELDS[entity] if name != "custom_properties"]
        assert frame.select(fields).equals(original.select(fields))


def test_pull_sync_for_scripts_and_notebooks():
    with sandbox() as running:
        running.app.store.put("customers", {"id": "c1", "name": "Acme", "custom_properties": {}})
        pulled = pull_sync(running.contract(), api_key=running.api_key)
    assert pulled.customers.get_column("name").to_list() == ["Acme"]


def test_values_that_do_not_fit_become_null_and_a_parse_issue():
    records = [
        {"id": "i1", "amount_excluding_tax": 10.005, "status": "settled", "issue_date": "1/2/25"},
        {"id": "i2", "amount_excluding_tax": 7, "issue_date": "2025-01-02T10:00:00+00:00"},
    ]
    frame, issues = frame_from_records("invoices", records, source="api:/invoices")
    assert frame.get_column("amount_excluding_tax").to_list() == [None, Decimal("7.00")]
    assert frame.get_column("issue_date").to_list() == [None, date(2025, 1, 2)]
    assert sorted(issues.select("line", "column", "raw_value").rows()) == [
        (1, "amount_excluding_tax", "10.005"),
        (1, "issue_date", "1/2/25"),
        (1, "status", "settled"),
    ]
    assert issues.get_column("file").unique().to_list() == ["api:/invoices"]


def test_pull_command_writes_parquet_frames(tmp_path, monkeypatch):
    with sandbox() as running:
        running.app.store.put("customers", {"id": "c1", "name": "Acme", "custom_properties": {}})
        runner = CliRunner()
        monkeypatch.delenv("FINCOME_API_KEY", raising=False)
        no_key = runner.invoke(main, ["pull", "--base-url", running.base_url, "--out", "x"])
        monkeypatch.setenv("FINCOME_API_KEY", running.api_key)
        done = runner.invoke(
            main, ["pull", "--base-url", running.base_url, "--out", str(tmp_path / "out")]
        )
    assert no_key.exit_code == 2 and "FINCOME_API_KEY" in no_key.output
    assert done.exit_code == 0, done.output
    customers = pl.read_parquet(tmp_path / "out" / "customers.parquet")
    assert customers.get_column("id").to_list() == ["c1"]
    assert (tmp_path / "out" / "invoices.parquet").exists()
