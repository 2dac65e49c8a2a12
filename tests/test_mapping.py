"""Column mapping: the TOML/dict format, its validation, and matching fields to file columns."""

from __future__ import annotations

import pytest

from fincome_toolkit.errors import InputError
from fincome_toolkit.mapping import (
    ColumnMapping,
    Constant,
    FrameMapping,
    resolve_columns,
)
from fincome_toolkit.parsing import ParseOptions

EXAMPLE = """
[options]
day_first = true
extra_columns = "custom_properties"
[options.status_synonyms]
"réglée" = "paid"

[customers]
file = "clients.xlsx"
[customers.columns]
id = "Code client"
name = "Raison sociale"
[customers.constants]
country = "FR"
"""


def test_from_toml_reads_the_documented_format(tmp_path):
    path = tmp_path / "mapping.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    mapping = ColumnMapping.from_toml(path)
    assert mapping.options.day_first is True
    assert mapping.options.extra_columns == "custom_properties"
    assert mapping.options.status_synonyms == {"réglée": "paid"}
    customers = mapping.for_frame("customers")
    assert customers.file == "clients.xlsx"
    assert customers.columns == {"id": "Code client", "name": "Raison sociale"}
    assert customers.constants == {"country": "FR"}
    assert mapping.for_frame("invoices") == FrameMapping()


def test_to_toml_round_trips(tmp_path):
    mapping = ColumnMapping.from_dict(
        {
            "options": {"decimal_comma": True, "null_values": ["néant"]},
            "invoices": {
                "file": "factures.csv",
                "columns": {"id": 'N° "facture"', "amount_excluding_tax": "Montant HT"},
                "constants": {"currency": "EUR"},
            },
        }
    )
    path = tmp_path / "saved.toml"
    path.write_text(mapping.to_toml(), encoding="utf-8")
    assert ColumnMapping.from_toml(path) == mapping
    assert ColumnMapping.from_dict(mapping.to_dict()) == mapping


def test_with_frame_builds_a_mapping_step_by_step():
    mapping = ColumnMapping().with_frame("customers", FrameMapping(columns={"id": "Code"}))
    assert mapping.to_dict() == {"customers": {"columns": {"id": "Code"}}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"custmers": {}}, "did you mean 'customers'"),
        ({"customers": {"columns": {"nam": "Nom"}}}, "did you mean 'name'"),
        ({"customers": {"colums": {}}}, "did you mean 'columns'"),
        ({"customers": {"columns": {"id": "A"}, "constants": {"id": "B"}}}, "both"),
        ({"customers": {"columns": {"id": 3}}}, "must be a str"),
        ({"options": {"extra_columns": "keep"}}, "extra_columns"),
        ({"options": {"day_first": "yes"}}, "must be a bool"),
        ({"options": {"dayfirst": True}}, "did you mean 'day_first'"),
    ],
)
def test_invalid_mappings_are_input_errors(data, message):
    with pytest.raises(InputError, match=message):
        ColumnMapping.from_dict(data)


def test_unreadable_toml_is_an_input_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[customers.columns]\nid = Code client\n", encoding="utf-8")
    with pytest.raises(InputError, match="not valid TOML") as caught:
        ColumnMapping.from_toml(path)
    assert str(path) in caught.value.message
    with pytest.raises(InputError, match="not found"):
        ColumnMapping.from_toml(tmp_path / "missing.toml")


def test_canonical_names_match_without_mapping():
    resolved = resolve_columns(
        "customers", ["ID", "Name", "E-mail", "Country ", "Segment"], FrameMapping(), file="c.csv"
    )
    assert resolved.sources == {"id": "ID", "name": "Name", "country": "Country "}
    assert resolved.extra == ("E-mail", "Segment")


def test_partial_mapping_and_constants():
    mapping = FrameMapping(columns={"name": "Raison sociale"}, constants={"country": "FR"})
    resolved = resolve_columns("customers", ["id", "Raison sociale"], mapping, file="c.csv")
    assert resolved.sources == {"id": "id", "name": "Raison sociale", "country": Constant("FR")}
    assert resolved.extra == ()


def test_mapped_column_absent_from_the_file():
    mapping = FrameMapping(columns={"name": "Raison socale"})
    with pytest.raises(InputError) as caught:
        resolve_columns("customers", ["id", "Raison sociale"], mapping, file="clients.csv")
    message = caught.value.message
    assert "clients.csv" in message and "Raison socale" in message
    assert "did you mean 'Raison sociale'" in message and "'id'" in message


def test_every_missing_required_field_is_named_at_once():
    with pytest.raises(InputError) as caught:
        resolve_columns(
            "invoices", ["id", "Customer", "Montant", "Devise"], FrameMapping(), file="inv.csv"
        )
    message = caught.value.message
    for field in ("customer_id", "issue_date", "status", "amount_excluding_tax", "currency"):
        assert field in message
    assert "did you mean 'Customer'" in message
    assert "'Montant'" in message  # the columns the file has
    assert "[invoices.columns]" in message  # the fix shows where to map them


def test_options_are_parse_options():
    mapping = ColumnMapping.from_dict({"options": {"currency_synonyms": {"balles": "EUR"}}})
    assert isinstance(mapping.options, ParseOptions)
    assert mapping.options.currency_synonyms == {"balles": "EUR"}
