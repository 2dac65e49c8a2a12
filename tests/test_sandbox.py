"""The sandbox server over real HTTP on loopback: contract, validation, faults, stats, storage."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fincome_toolkit.contract import ContractSettings
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.sandbox import DEFAULT_API_KEY, SandboxSettings, banner, sandbox

KEY = {"X-API-Key": DEFAULT_API_KEY}
CUSTOMER = {"id": "c1", "name": "Acme", "country": "FR", "email": "billing@acme.fr"}
SUBSCRIPTION = {
    "id": "s1",
    "customer_id": "c1",
    "plan_id": "pro",
    "status": "active",
    "start_date": "2025-01-01",
    "end_date": None,
    "interval_unit": "month",
    "interval_count": 1,
    "quantity": 1,
    "amount_excluding_tax": 100.5,
    "currency": "EUR",
}
INVOICE = {
    "id": "i1",
    "customer_id": "c1",
    "subscription_id": "s1",
    "issue_date": "2025-01-01",
    "status": "paid",
    "type": "subscription",
    "period_start": "2025-01-01",
    "period_end": "2025-02-01",
    "amount_excluding_tax": 100.5,
    "tax_amount": 20.1,
    "currency": "EUR",
    "custom_properties": {"po": "A-1", "ratio": 0.25},
}


def http(running) -> httpx.Client:
    return httpx.Client(base_url=running.base_url, headers=KEY, timeout=10)


def seed_parents(client: httpx.Client) -> None:
    assert client.post("/customers", json=CUSTOMER).status_code == 201
    assert client.post("/subscriptions", json=SUBSCRIPTION).status_code == 201


def error_fields(response: httpx.Response) -> dict[str, str]:
    """{field: type} of a 422 answer, checking each item has the A6 shape."""
    assert response.status_code == 422, response.text
    items = response.json()["detail"]
    for item in items:
        assert set(item) == {"loc", "msg", "type"} and item["msg"]
    return {item["loc"][-1]: item["type"] for item in items}


# --- the contract -----------------------------------------------------------------------------


def test_missing_or_wrong_key_is_401_and_stores_nothing():
    with sandbox() as running:
        anonymous = httpx.post(f"{running.base_url}/customers", json=CUSTOMER)
        wrong = httpx.post(
            f"{running.base_url}/customers", json=CUSTOMER, headers={"X-API-Key": "nope"}
        )
        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        assert running.records("customers") == []


def test_customers_are_created_then_updated_by_id():
    with sandbox() as running, http(running) as client:
        created = client.post("/customers", json=CUSTOMER)
        updated = client.post("/customers", json=CUSTOMER | {"name": "Acme SA"})
        assert (created.status_code, updated.status_code) == (201, 200)
        body = updated.json()
        assert body["name"] == "Acme SA" and body["custom_properties"] == {}
        assert body["created_at"] and body["updated_at"]
        assert [r["name"] for r in running.records("customers")] == ["Acme SA"]


def test_stored_amounts_keep_their_exact_decimal_text():
    with sandbox() as running, http(running) as client:
        seed_parents(client)
        answer = client.post("/invoices", json=INVOICE | {"amount_excluding_tax": 99999999.99})
        assert answer.status_code == 201
        assert '"amount_excluding_tax":99999999.99' in answer.text
        assert '"tax_amount":20.1' in answer.text
        assert answer.json()["custom_properties"] == {"po": "A-1", "ratio": 0.25}


def test_get_and_patch_by_id_including_ids_with_slashes():
    with sandbox() as running, http(running) as client:
        client.post("/customers", json=CUSTOMER | {"id": "acme/eu 1"})
        path = "/customers/acme%2Feu%201"
        assert client.get(path).json()["name"] == "Acme"
        patched = client.patch(path, json={"zip_code": "75001"})
        assert patched.status_code == 202
        assert patched.json()["zip_code"] == "75001" and patched.json()["name"] == "Acme"
        assert client.get("/customers/unknown").status_code == 404
        assert client.patch("/customers/unknown", json={"name": "x"}).status_code == 404


def test_patch_validates_fields_and_the_merged_record():
    with sandbox() as running, http(running) as client:
        seed_parents(client)
        client.post("/invoices", json=INVOICE)
        assert error_fields(client.patch("/invoices/i1", json={"status": "lost"})) == {
            "status": "enum"
        }
        merged = client.patch("/invoices/i1", json={"period_end": "2024-12-01"})
        assert error_fields(merged) == {"period_end": "value_error"}
        assert error_fields(client.patch("/invoices/i1", json={"id": "i2"})) == {
            "id": "value_error"
        }
        assert running.records("invoices")[0]["period_end"] == "2025-02-01"


def test_duplicate_invoice_upserts_by_default():
    with sandbox() as running, http(running) as client:
        seed_parents(client)
        assert client.post("/invoices", json=INVOICE).status_code == 201
        again = client.post("/invoices", json=INVOICE | {"status": "open"})
        assert again.status_code == 200 and again.json()["status"] == "open"
        assert [r["status"] for r in running.records("invoices")] == ["open"]


def test_duplicate_invoice_conflicts_when_asked_and_keeps_the_stored_content():
    with sandbox(duplicate_policy="conflict") as running, http(running) as client:
        seed_parents(client)
        assert client.post("/invoices", json=INVOICE).status_code == 201
        again = client.post("/invoices", json=INVOICE | {"status": "open"})
        assert again.status_code == 409
        assert again.json() == {"detail": "invoice i1 already exists"}
        assert [r["status"] for r in running.records("invoices")] == ["paid"]
        # Subscriptions still create-or-update (A3) whatever the invoice policy.
        assert client.post("/subscriptions", json=SUBSCRIPTION).status_code == 200


def test_validation_answers_422_per_field_like_fastapi():
    with sandbox() as running, http(running) as client:
        seed_parents(client)
        bad = INVOICE | {
            "amount_excluding_tax": 10.005,
            "tax_amount": -1,
            "status": "settled",
            "issue_date": "2025-02-30",
            "currency": "eur",
            "type": 3,
            "source_line": 7,
        }
        assert error_fields(client.post("/invoices", json=bad)) == {
            "amount_excluding_tax": "decimal_max_places",
            "tax_amount": "greater_than_equal",
            "status": "enum",
            "issue_date": "date_parsing",
            "currency": "currency_code",
            "type": "string_type",
            "source_line": "extra_forbidden",
        }
        negative = client.post("/invoices", json=INVOICE | {"amount_excluding_tax": -5})
        assert negative.json()["detail"][0]["msg"] == "must be >= 0"
        customer = CUSTOMER | {"id": "c2", "country": "XX", "email": "nobody"}
        assert error_fields(client.post("/customers", json=customer)) == {
            "country": "country_code",
            "email": "value_error",
        }
        assert error_fields(client.post("/customers", json={"id": "c3"})) == {"name": "missing"}
        assert running.records("invoices") == []


def test_periods_must_increase_and_counts_be_positive():
    with sandbox() as running, http(running) as client:
        seed_parents(client)
        same_day = INVOICE | {"period_end": "2025-01-01"}
        assert error_fields(client.post("/invoices", json=same_day)) == {
            "period_end": "value_error"
        }
        subscription = SUBSCRIPTION | {
            "id": "s2",
            "interval_count": 0,
            "interval_unit": "fortnight",
        }
        assert error_fields(client.post("/subscriptions", json=subscription)) == {
            "interval_count": "greater_than_equal",
            "interval_unit": "enum",
        }


def test_bodies_that_are_not_json_objects_are_422():
    with sandbox() as running, http(running) as client:
        not_json = client.post("/customers", content=b"{oops", headers={"Content-Type": "x"})
        a_list = client.post("/customers", json=[CUSTOMER])
        assert not_json.status_code == a_list.status_code == 422
        assert a_list.json()["detail"][0]["loc"] == ["body"]


def test_references_must_exist():
    with sandbox() as running, http(running) as client:
        orphan = SUBSCRIPTION | {"customer_id": "ghost"}
        answer = client.post("/subscriptions", json=orphan)
        assert error_fields(answer) == {"customer_id": "reference_not_found"}
        assert "ghost" in answer.json()["detail"][0]["msg"]
        seed_parents(client)
        no_sub = INVOICE | {"subscription_id": "s-ghost"}
        assert error_fields(client.post("/invoices", json=no_sub)) == {
            "subscription_id": "reference_not_found"
        }
        child = CUSTOMER | {"id": "c-child", "root_parent_id": "c-missing"}
        assert error_fields(client.post("/customers", json=child)) == {
            "root_parent_id": "reference_not_found"
        }
        assert client.post("/customers", json=child | {"root_parent_id": "c1"}).status_code == 201
        one_off = INVOICE | {"id": "i9", "subscription_id": None, "type": "one_off"}
        assert client.post("/invoices", json=one_off).status_code == 201


def test_listing_follows_opaque_cursors_and_checks_its_parameters():
    with sandbox() as running, http(running) as client:
        for number in range(5):
            client.post("/customers", json=CUSTOMER | {"id": f"c{number}"})
        first = client.get("/customers", params={"limit": 2}).json()
        assert [r["id"] for r in first["data"]] == ["c0", "c1"]
        second = client.get("/customers", params={"limit": 2, "cursor": first["next_cursor"]})
        third_cursor = second.json()["next_cursor"]
        third = client.get("/customers", params={"limit": 2, "cursor": third_cursor}).json()
        assert [r["id"] for r in third["data"]] == ["c4"] and third["next_cursor"] is None
        assert client.get("/customers", params={"limit": 1001}).status_code == 422
        assert client.get("/customers", params={"limit": "x"}).status_code == 422
        bad_cursor = client.get("/customers", params={"cursor": "not-a-cursor"})
        assert bad_cursor.json()["detail"][0]["loc"] == ["query", "cursor"]
        assert client.get("/invoices").json() == {"data": [], "next_cursor": None}


def test_other_paths_from_the_contract_settings_are_served():
    contract = ContractSettings(customers_path="/clients", auth_header="Authorization")
    settings = SandboxSettings(contract=contract.replace(auth_prefix="Bearer "))
    with sandbox(settings) as running:
        headers = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        answer = httpx.post(f"{running.base_url}/clients", json=CUSTOMER, headers=headers)
        assert answer.status_code == 201
        assert httpx.post(f"{running.base_url}/clients", json=CUSTOMER).status_code == 401
        assert running.contract().path("customers") == "/clients"


# --- faults ---------------------------------------------------------------------------------


def test_over_the_rate_limit_answers_429_with_retry_after_in_seconds():
    with sandbox(rate_limit=0.2) as running, http(running) as client:
        answers = [client.post("/customers", json=CUSTOMER | {"id": f"c{n}"}) for n in range(4)]
        limited = [a for a in answers if a.status_code == 429]
        assert answers[0].status_code == 201 and limited
        assert all(int(a.headers["Retry-After"]) >= 1 for a in limited)
        assert running.stats()["faults"]["rate_limited"] == len(limited)
        assert len(running.records("customers")) == 4 - len(limited)


def post_many(running, count: int) -> dict[str, int]:
    """POST `count` customers, return {id: status} (0 for a lost answer)."""
    statuses = {}
    with http(running) as client:
        for number in range(count):
            try:
                statuses[f"c{number}"] = client.post(
                    "/customers", json=CUSTOMER | {"id": f"c{number}"}
                ).status_code
            except httpx.TransportError:
                statuses[f"c{number}"] = 0
    return statuses


def test_injected_failures_happen_before_any_write_and_are_reproducible():
    with sandbox(fail_rate=0.5, seed=11) as running:
        statuses = post_many(running, 40)
        stored = {record["id"] for record in running.records("customers")}
        failed = {cid for cid, status in statuses.items() if status in (500, 503)}
        assert 0 < len(failed) < 40
        assert set(statuses.values()) <= {201, 500, 503}
        assert stored == set(statuses) - failed
        assert running.stats()["faults"]["failed"] == len(failed)
    with sandbox(fail_rate=0.5, seed=11) as again:
        assert post_many(again, 40) == statuses
    with sandbox(fail_rate=0.5, seed=12) as other_seed:
        assert post_many(other_seed, 40) != statuses


def test_dropped_answers_are_lost_after_the_write_was_committed():
    with sandbox(drop_rate=1.0) as running:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            httpx.post(f"{running.base_url}/customers", json=CUSTOMER, headers=KEY)
        assert [r["id"] for r in running.records("customers")] == ["c1"]
        stats = running.stats()
        assert stats["by_status"] == {"dropped": 1}
        assert stats["faults"]["dropped"] == 1


def test_a_fraction_of_answers_is_dropped():
    with sandbox(drop_rate=0.3, seed=5) as running:
        statuses = post_many(running, 30)
        lost = [cid for cid, status in statuses.items() if status == 0]
        assert 0 < len(lost) < 30
        assert {r["id"] for r in running.records("customers")} == set(statuses)
        assert running.stats()["by_status"] == {"201": 30 - len(lost), "dropped": len(lost)}


def test_latency_is_added_without_changing_answers():
    with sandbox(latency_ms=5) as running, http(running) as client:
        assert client.post("/customers", json=CUSTOMER).status_code == 201


def test_invalid_fault_settings_are_config_errors():
    with pytest.raises(ConfigError):
        SandboxSettings(fail_rate=1.5)
    with pytest.raises(ConfigError):
        SandboxSettings(fail_rate=0.6, drop_rate=0.6)
    with pytest.raises(ConfigError):
        SandboxSettings(duplicate_policy="ignore")
    with pytest.raises(ConfigError):
        SandboxSettings(rate_limit=0)


# --- stats, storage, concurrency ------------------------------------------------------------


def test_stats_count_every_request_by_status_and_route():
    with sandbox() as running, http(running) as client:
        client.post("/customers", json=CUSTOMER)
        client.post("/customers", json=CUSTOMER)
        client.get("/customers/c1")
        client.get("/customers/nobody")
        client.post("/customers", json={"id": "c2"})
        httpx.get(f"{running.base_url}/customers")
        stats = running.stats()
        assert stats["requests"] == 6
        assert stats["by_status"] == {"200": 2, "201": 1, "401": 1, "404": 1, "422": 1}
        assert stats["by_route"]["POST /customers"] == {"201": 1, "200": 1, "422": 1}
        assert stats["by_route"]["GET /customers/{id}"] == {"200": 1, "404": 1}
        assert stats["records"] == {"customers": 1}
        over_http = httpx.get(f"{running.base_url}/_sandbox/stats").json()
        assert over_http == stats


def test_data_survives_a_restart_with_a_database_file(tmp_path):
    db = tmp_path / "sandbox.sqlite"
    with sandbox(db=db) as first, http(first) as client:
        seed_parents(client)
    with sandbox(db=db) as second, http(second) as client:
        assert client.get("/customers/c1").status_code == 200
        assert client.post("/customers", json=CUSTOMER).status_code == 200
        assert [r["id"] for r in second.records("subscriptions")] == ["s1"]


def test_concurrent_writes_are_all_stored():
    async def send_all(base_url: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base_url, headers=KEY, timeout=30) as client:
            answers = await asyncio.gather(
                *(client.post("/customers", json=CUSTOMER | {"id": f"c{n}"}) for n in range(150))
            )
        return [answer.status_code for answer in answers]

    with sandbox() as running:
        assert asyncio.run(send_all(running.base_url)) == [201] * 150
        assert running.stats()["records"] == {"customers": 150}


# --- the command line -----------------------------------------------------------------------


def test_banner_shows_the_public_test_key_but_never_a_chosen_one():
    public = "\n".join(banner(SandboxSettings(), "http://127.0.0.1:9"))
    assert f"FINCOME_API_KEY={DEFAULT_API_KEY}" in public
    assert "--base-url http://127.0.0.1:9" in public
    chosen = "\n".join(banner(SandboxSettings(api_key="my-private-k3y"), "http://127.0.0.1:9"))
    assert "my-private-k3y" not in chosen


def test_sandbox_command_serves_until_interrupted(tmp_path):
    command = [
        sys.executable,
        "-c",
        "from fincome_toolkit.cli import main; main()",
        "sandbox",
        "--port",
        "0",
        "--db",
        str(tmp_path / "s.sqlite"),
        "--api-key",
        "chosen-k3y",
    ]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    try:
        first_line = server.stdout.readline()
        assert "listening on http://127.0.0.1:" in first_line, first_line
        base_url = first_line.rsplit(" ", 1)[-1].strip()
        headers = {"X-API-Key": "chosen-k3y"}
        assert httpx.post(f"{base_url}/customers", json=CUSTOMER, headers=headers).is_success
    finally:
        server.send_signal(signal.SIGINT)
        output = first_line + server.communicate(timeout=20)[0]
    assert "chosen-k3y" not in output
    assert Path(tmp_path / "s.sqlite").exists()
