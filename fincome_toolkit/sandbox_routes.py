"""The sandbox's routes: the contract's endpoints (A2–A8) over the record store.

Each endpoint finds its store and settings on `request.app` (a `sandbox.SandboxApp`); the fault
gate in `sandbox.py` has already checked the key and decided on faults before these run.
"""

from __future__ import annotations

import base64
import binascii
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fincome_toolkit.contract import ENTITIES, ContractSettings
from fincome_toolkit.frames import FIELDS
from fincome_toolkit.sandbox_rules import (
    SINGULAR,
    error,
    field_errors,
    record_errors,
    reference_errors,
    stored_form,
)

if TYPE_CHECKING:
    from fincome_toolkit.sandbox import SandboxApp


def contract_routes(contract: ContractSettings) -> list[Route]:
    """The routes of every entity under the paths the contract names, plus `/_sandbox/stats`."""
    routes = [Route("/_sandbox/stats", _stats_endpoint, methods=["GET"])]
    for entity in ENTITIES:
        path = contract.path(entity)
        routes.append(Route(path, _collection_endpoint(entity), methods=["GET", "POST"]))
        routes.append(
            Route(f"{path}/{{record_id:path}}", _item_endpoint(entity), methods=["GET", "PATCH"])
        )
    return routes


async def _stats_endpoint(request: Request) -> Response:
    return JSONResponse(request.app.stats())


def _collection_endpoint(entity: str):
    async def endpoint(request: Request) -> Response:
        if request.method == "POST":
            return await _create(request, entity)
        return _list(request, entity)

    return endpoint


def _item_endpoint(entity: str):
    async def endpoint(request: Request) -> Response:
        record_id = request.path_params["record_id"]
        if request.method == "PATCH":
            return await _update(request, entity, record_id)
        stored = request.app.store.get(entity, record_id)
        return JSONResponse(stored) if stored else _not_found(entity, record_id)

    return endpoint


async def _json_object(request: Request) -> dict[str, Any] | Response:
    """The body as a dict (floats as Decimal, to judge decimals exactly), or a 422 answer."""
    try:
        value = json.loads(await request.body(), parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _invalid([error(None, f"JSON decode error: {exc}", "json_invalid")])
    if not isinstance(value, dict):
        return _invalid([error(None, "Input should be a valid dictionary", "dict_type")])
    return value


async def _create(request: Request, entity: str) -> Response:
    app: SandboxApp = request.app
    record = await _json_object(request)
    if isinstance(record, Response):
        return record
    errors = field_errors(entity, record)
    if not errors:
        errors = record_errors(entity, record) + reference_errors(entity, record, app.store.exists)
    if errors:
        return _invalid(errors)
    settings = app.sandbox_settings
    upserts = entity in settings.contract.upsert_entities or settings.duplicate_policy == "upsert"
    if not upserts and app.store.exists(entity, record["id"]):
        detail = f"{SINGULAR[entity]} {record['id']} already exists"
        return JSONResponse({"detail": detail}, status_code=409)
    stored, created = app.store.put(entity, stored_form(entity, record))
    return JSONResponse(stored, status_code=201 if created else 200)


async def _update(request: Request, entity: str, record_id: str) -> Response:
    app: SandboxApp = request.app
    stored = app.store.get(entity, record_id)
    if stored is None:
        return _not_found(entity, record_id)
    changes = await _json_object(request)
    if isinstance(changes, Response):
        return changes
    errors = field_errors(entity, changes, partial=True)
    if changes.get("id", record_id) != record_id:
        errors.append(
            error("id", "must match the id in the URL (ids cannot change)", "value_error")
        )
    merged = {name: stored.get(name) for name in FIELDS[entity]} | changes
    if not errors:
        errors = record_errors(entity, merged) + reference_errors(
            entity, merged, app.store.exists, fields=set(changes)
        )
    if errors:
        return _invalid(errors)
    updated, _ = app.store.put(entity, stored_form(entity, merged))
    return JSONResponse(updated, status_code=202)


def _list(request: Request, entity: str) -> Response:
    app: SandboxApp = request.app
    contract = app.sandbox_settings.contract
    limit_text = request.query_params.get(contract.list_limit_param)
    cursor_text = request.query_params.get(contract.list_cursor_param)
    limit = app.sandbox_settings.default_page_size if limit_text is None else _int(limit_text)
    if limit is None or not 1 <= limit <= contract.list_limit:
        msg = f"Input should be an integer from 1 to {contract.list_limit}"
        return _invalid([error(contract.list_limit_param, msg, "less_than_equal", where="query")])
    after = 0 if cursor_text is None else _decode_cursor(entity, cursor_text)
    if after is None:
        msg = "invalid cursor: pass back a next_cursor exactly as received"
        return _invalid([error(contract.list_cursor_param, msg, "value_error", where="query")])
    records, last = app.store.page(entity, after=after, limit=limit)
    more = bool(records) and app.store.has_after(entity, last)
    next_cursor = _encode_cursor(entity, last) if more else None
    return JSONResponse(
        {contract.list_data_key: records, contract.list_next_cursor_key: next_cursor}
    )


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _encode_cursor(entity: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{entity}:{position}".encode()).decode().rstrip("=")


def _decode_cursor(entity: str, cursor: str) -> int | None:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        name, position = text.split(":")
        return int(position) if name == entity and int(position) >= 0 else None
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None


def _invalid(errors: list[dict[str, Any]]) -> Response:
    return JSONResponse({"detail": errors}, status_code=422)


def _not_found(entity: str, record_id: str) -> Response:
    return JSONResponse({"detail": f"{SINGULAR[entity]} {record_id!r} not found"}, 404)
