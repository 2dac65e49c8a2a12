"""The API contract: settings, payload building (exact money), hashing, reading answers."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fincome_toolkit.contract import (
    REFERENCES,
    ContractSettings,
    Outcome,
    build_payloads,
    classify,
    classify_error,
    parse_retry_after,
    payload_differences,
    payload_hash,
    readable_detail,
    referenced_ids,
    references,
)
from fincome_toolkit.errors import ConfigError, InputError
from fincome_toolkit.frames import FIELDS, canonical_schema


def canonical(entity: str, rows: list[dict]) -> pl.DataFrame:
    """A canonical frame from partial rows (missing fields null, provenance filled in)."""
    full = [
        {name: row.get(name) for name in FIELDS[entity]}
        | {"source_file": f"{entity}.csv", "source_line": line}
        for line, row in enumerate(rows, start=2)
    ]
    return pl.DataFrame(full, schema=canonical_schema(entity))


def invoice(**values) -> dict:
    base = {
        "id": "inv-1",
        "customer_id": "c1",
        "subscription_id": "s1",
        "issue_date": date(2025, 1, 1),
        "status": "paid",
        "type": "subscription",
        "period_start": date(2025, 1, 1),
        "period_end": date(2025, 2, 1),
        "amount_excluding_tax": Decimal("100.00"),
        "tax_amount": Decimal("20.00"),
        "currency": "EUR",
        "custom_properties": "{}",
    }
    return base | values


# --- settings ---------------------------------------------------------------------------------


def test_default_settings_follow_the_documented_assumptions():
    settings = ContractSettings()
    assert settings.base_url == "https://api2.fincome.co/product"
    assert settings.auth_headers("k") == {"X-API-Key": "k"}
    assert settings.path("customers") == "/customers"
    assert settings.list_limit == 1000
    assert settings.success_statuses == (200, 201, 202)


def test_settings_from_toml_correct_the_assumptions_without_code(tmp_path):
    path = tmp_path / "contract.toml"
    path.write_text(
        "[contract]\n"
        'customers_path = "/clients"\n'
        'auth_header = "Authorization"\n'
        'auth_prefix = "Bearer "\n'
        "list_limit = 200\n"
        'duplicate_invoice_policy = "conflict"\n'
        "transient_statuses = [500, 503]\n",
        encoding="utf-8",
    )
    settings = ContractSettings.from_toml(path)
    assert settings.path("customers") == "/clients"
    assert settings.auth_headers("s3cret") == {"Authorization": "Bearer s3cret"}
    assert settings.list_limit == 200
    assert settings.transient_statuses == (500, 503)
    assert settings.entity_of_path("/clients") == "customers"


def test_unknown_setting_names_the_file_and_the_valid_names(tmp_path):
    path = tmp_path / "contract.toml"
    path.write_text('custmers_path = "/clients"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        ContractSettings.from_toml(path)
    assert "custmers_path" in raised.value.message
    assert str(path) in raised.value.message
    assert "customers_path" in raised.value.message


def test_invalid_duplicate_policy_is_refused():
    with pytest.raises(ConfigError, match="A4"):
        ContractSettings(duplicate_invoice_policy="ignore")


def test_missing_toml_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        ContractSettings.from_toml(tmp_path / "nope.toml")


# --- payloads ---------------------------------------------------------------------------------


def test_invoice_payload_has_wire_formats_and_no_provenance():
    frame = canonical(
        "invoices",
        [invoice(currency="eur", custom_properties='{"segment": "smb", "seats": 3}')],
    )
    [payload] = build_payloads("invoices", frame)
    assert set(payload) == set(FIELDS["invoices"])
    assert payload["issue_date"] == "2025-01-01"
    assert payload["period_end"] == "2025-02-01"
    assert payload["due_date"] is None
    assert payload["status"] == "paid"
    assert payload["currency"] == "EUR"
    assert payload["custom_properties"] == {"segment": "smb", "seats": 3}


@pytest.mark.parametrize(
    ("amount", "wire"),
    [
        ("0.10", "0.1"),
        ("1234.5", "1234.5"),
        ("1234.50", "1234.5"),
        ("99999999.99", "99999999.99"),
        ("0.29", "0.29"),
        ("0.30", "0.3"),
        ("-12.00", "-12.0"),
        ("9999999999999.99", "9999999999999.99"),
    ],
)
def test_amounts_travel_as_their_exact_decimal_text(amount, wire):
    frame = canonical("invoices", [invoice(amount_excluding_tax=Decimal(amount))])
    [payload] = build_payloads("invoices", frame)
    text = json.dumps(payload)
    assert f'"amount_excluding_tax": {wire},' in text
    assert Decimal(wire) == Decimal(amount)


@given(st.decimals(min_value=-(10**13) + 1, max_value=10**13 - 1, places=2))
def test_any_two_decimal_amount_round_trips_through_json_exactly(amount):
    frame = canonical("subscriptions", [{"id": "s", "amount_excluding_tax": amount}])
    [payload] = build_payloads("subscriptions", frame)
    text = json.dumps(payload["amount_excluding_tax"])
    assert Decimal(text) == amount


def test_amount_too_large_for_an_exact_json_number_is_refused_with_its_place():
    frame = canonical("invoices", [invoice(amount_excluding_tax=Decimal("12345678901234.56"))])
    with pytest.raises(InputError) as raised:
        build_payloads("invoices", frame)
    assert "invoices.csv:2" in raised.value.message
    assert "inv-1" in raised.value.message


def test_null_custom_properties_become_an_empty_object_and_nulls_stay_null():
    frame = canonical("customers", [{"id": "c1", "name": "Acme", "country": " fr "}])
    [payload] = build_payloads("customers", frame)
    assert payload == {
        "id": "c1",
        "name": "Acme",
        "email": None,
        "country": "FR",
        "zip_code": None,
        "root_parent_id": None,
        "custom_properties": {},
    }


def test_custom_properties_that_are_not_an_object_are_an_input_error():
    frame = canonical("customers", [{"id": "c9", "name": "X", "custom_properties": "[1, 2]"}])
    with pytest.raises(InputError) as raised:
        build_payloads("customers", frame)
    assert "customers.csv:2" in raised.value.message and "c9" in raised.value.message


def test_subscription_payload_keeps_integers_and_enum_text():
    row = {
        "id": "s1",
        "customer_id": "c1",
        "status": "active",
        "interval_unit": "month",
        "interval_count": 3,
        "quantity": 2,
        "start_date": date(2025, 1, 15),
    }
    [payload] = build_payloads("subscriptions", canonical("subscriptions", [row]))
    assert payload["interval_count"] == 3 and isinstance(payload["interval_count"], int)
    assert payload["interval_unit"] == "month"
    assert payload["start_date"] == "2025-01-15"
    assert payload["end_date"] is None


def test_frame_without_canonical_columns_is_an_input_error():
    with pytest.raises(InputError, match="lacks the column"):
        build_payloads("customers", pl.DataFrame({"id": ["c1"]}))


def test_payload_hash_is_stable_under_key_order_and_changes_with_content():
    first = {"id": "c1", "name": "Acme", "custom_properties": {"a": 1, "b": 2}}
    reordered = {"custom_properties": {"b": 2, "a": 1}, "name": "Acme", "id": "c1"}
    assert payload_hash(first) == payload_hash(reordered)
    assert payload_hash(first) != payload_hash(first | {"name": "Acme SA"})
    assert len(payload_hash(first)) == 64


def test_references_name_every_link_between_entities():
    assert {(r.entity, r.field, r.target) for r in REFERENCES} == {
        ("subscriptions", "customer_id", "customers"),
        ("invoices", "customer_id", "customers"),
        ("invoices", "subscription_id", "subscriptions"),
        ("customers", "root_parent_id", "customers"),
    }
    assert [r.field for r in references("invoices")] == ["customer_id", "subscription_id"]


def test_referenced_ids_lists_each_non_null_reference():
    frame = canonical("invoices", [invoice(), invoice(id="inv-2", subscription_id=None)])
    found = referenced_ids("invoices", frame)
    assert sorted(found.rows()) == [
        ("inv-1", "customer_id", "customers", "c1"),
        ("inv-1", "subscription_id", "subscriptions", "s1"),
        ("inv-2", "customer_id", "customers", "c1"),
    ]


# --- comparing sent and stored ----------------------------------------------------------------


def test_stored_object_with_server_fields_and_other_number_forms_is_the_same_content():
    sent = build_payloads("invoices", canonical("invoices", [invoice()]))[0]
    stored = sent | {
        "amount_excluding_tax": "100.00",
        "tax_amount": 20,
        "currency": "eur",
        "created_at": "2025-03-01T10:00:00+00:00",
        "updated_at": "2025-03-02T10:00:00+00:00",
    }
    assert payload_differences("invoices", sent, stored) == {}


def test_differences_name_each_changed_field():
    sent = build_payloads("invoices", canonical("invoices", [invoice()]))[0]
    stored = sent | {"amount_excluding_tax": 100.01, "status": "open"}
    assert payload_differences("invoices", sent, stored) == {
        "status": ("paid", "open"),
        "amount_excluding_tax": (Decimal("100.00"), Decimal("100.01")),
    }


# --- reading answers --------------------------------------------------------------------------


def answer(status: int, body=None, headers=None, text: str | None = None) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def test_success_statuses_are_acknowledged_with_the_stored_body():
    for status in (200, 201, 202):
        classified = classify(answer(status, {"id": "c1"}))
        assert classified.outcome is Outcome.ACKNOWLEDGED
        assert classified.body == {"id": "c1"}


def test_validation_errors_become_one_readable_line():
    body = {
        "detail": [
            {"loc": ["body", "amount_excluding_tax"], "msg": "must be >= 0", "type": "ge"},
            {"loc": ["body", "currency"], "msg": "not ISO 4217", "type": "currency_code"},
        ]
    }
    classified = classify(answer(422, body))
    assert classified.outcome is Outcome.REJECTED
    assert classified.detail == "amount_excluding_tax: must be >= 0; currency: not ISO 4217"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (401, Outcome.AUTH_FAILED),
        (404, Outcome.NOT_FOUND),
        (409, Outcome.CONFLICT),
        (429, Outcome.RATE_LIMITED),
        (500, Outcome.TRANSIENT),
        (502, Outcome.TRANSIENT),
        (503, Outcome.TRANSIENT),
        (504, Outcome.TRANSIENT),
        (400, Outcome.REJECTED),
        (403, Outcome.REJECTED),
        (501, Outcome.REJECTED),
    ],
)
def test_statuses_map_to_outcomes(status, outcome):
    assert classify(answer(status, {"detail": "x"})).outcome is outcome


def test_conflict_keeps_the_servers_words():
    classified = classify(answer(409, {"detail": "invoice inv-1 already exists"}))
    assert classified.detail == "invoice inv-1 already exists"


def test_retry_after_in_seconds_and_as_an_http_date():
    assert classify(answer(429, {}, {"Retry-After": "7"})).retry_after == 7.0
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = {"Retry-After": "Wed, 01 Jan 2025 12:00:30 GMT"}
    assert classify(answer(429, {}, header), now=now).retry_after == 30.0
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_a_non_json_error_body_is_shown_cut_short():
    classified = classify(answer(400, text="<html>" + "bad request " * 100 + "</html>"))
    assert classified.outcome is Outcome.REJECTED
    assert classified.detail.startswith("<html>bad request")
    assert len(classified.detail) <= 300


def test_readable_detail_of_a_whole_body_error():
    body = {"detail": [{"loc": ["body"], "msg": "Input should be a valid dictionary"}]}
    assert readable_detail(body) == "Input should be a valid dictionary"


def test_network_failures_say_whether_the_write_may_have_landed():
    request = httpx.Request("POST", "http://127.0.0.1/customers")
    refused = classify_error(httpx.ConnectError("refused", request=request))
    lost = classify_error(httpx.RemoteProtocolError("disconnected", request=request))
    assert refused.outcome is lost.outcome is Outcome.TRANSIENT
    assert (refused.maybe_stored, lost.maybe_stored) == (False, True)
