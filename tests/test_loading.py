"""Loading real files written in tmp_path: every format, encoding, bad file, and nothing lost."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal

import polars as pl
import pytest

from fincome_toolkit import frames
from fincome_toolkit.errors import InputError
from fincome_toolkit.loading import load_dataset, load_frame, read_source

CUSTOMERS = [
    {"id": "C1", "name": "Café Dupont", "country": "France"},
    {"id": "C2", "name": "Müller GmbH", "country": "Allemagne"},
    {"id": "C3", "name": "Ørsted & Søn", "country": "DK"},
]
INVOICES_CSV = (
    "id,customer_id,subscription_id,issue_date,status,amount_excluding_tax,currency\n"
    "I1,C1,S1,2025-01-31,paid,100.00,EUR\n"
    "I2,C2,S2,2025-02-28,open,12.50,EUR\n"
)


def write_customers(path, fmt: str, *, delimiter: str = ",") -> None:
    frame = pl.DataFrame(CUSTOMERS)
    if fmt == "csv":
        frame.write_csv(path, separator=delimiter)
    elif fmt == "json":
        path.write_text(json.dumps(CUSTOMERS, ensure_ascii=False), encoding="utf-8")
    elif fmt == "ndjson":
        frame.write_ndjson(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    else:
        frame.write_excel(path)


@pytest.mark.parametrize(
    ("name", "fmt", "delimiter", "first_line"),
    [
        ("customers.csv", "csv", ",", 2),
        ("customers.csv", "csv", ";", 2),
        ("customers.tsv", "csv", "\t", 2),
        ("customers.csv", "csv", "|", 2),
        ("customers.json", "json", None, 1),
        ("customers.ndjson", "ndjson", None, 1),
        ("customers.parquet", "parquet", None, 1),
        ("customers.xlsx", "xlsx", None, 2),
    ],
)
def test_every_format_loads_the_same_frame(tmp_path, name, fmt, delimiter, first_line):
    path = tmp_path / name
    write_customers(path, fmt, delimiter=delimiter or ",")
    loaded = load_frame(path, "customers")
    assert loaded.frame.schema == frames.canonical_schema("customers")
    assert loaded.frame["id"].to_list() == ["C1", "C2", "C3"]
    assert loaded.frame["name"].to_list() == ["Café Dupont", "Müller GmbH", "Ørsted & Søn"]
    assert loaded.frame["country"].to_list() == ["FR", "DE", "DK"]
    assert loaded.frame["custom_properties"].to_list() == ["{}"] * 3
    assert loaded.frame["source_line"].to_list() == [first_line, first_line + 1, first_line + 2]
    assert loaded.parse_issues.is_empty()
    source = loaded.source
    assert source.format == ("csv" if fmt == "csv" else fmt)
    assert source.rows == 3
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    if fmt == "csv":
        assert source.delimiter == delimiter


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp1252", "cp1252"), ("utf-16", "utf-16")],
)
def test_encodings_are_detected(tmp_path, encoding, expected):
    text = "id;name;country\nC1;Café Dupont – “SARL”;France\nC2;Société Générale;France\n"
    if encoding != "cp1252":
        text = text.replace("–", "-")
    path = tmp_path / "customers.csv"
    path.write_bytes(text.encode(encoding))
    loaded = load_frame(path, "customers")
    assert loaded.source.encoding == expected
    assert loaded.frame["name"][1] == "Société Générale"
    assert loaded.frame["name"][0].startswith("Café Dupont")
    assert loaded.frame.columns[0] == "id"  # no BOM glued to the first header


def test_cp1252_bytes_far_into_the_file_are_detected(tmp_path):
    # the head (first 64 KB) reads as UTF-8; only the full pass over the file shows it is not
    rows = [f"C{i};Plain Name;FR" for i in range(5000)] + ["C9999;Café “Dupont”;FR"]
    path = tmp_path / "customers.csv"
    path.write_bytes(("id;name;country\n" + "\n".join(rows) + "\n").encode("cp1252"))
    loaded = load_frame(path, "customers")
    assert loaded.source.encoding == "cp1252"
    assert loaded.frame["name"][-1] == "Café “Dupont”"
    assert loaded.frame["source_line"][-1] == 5002
    assert loaded.source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_latin1_bytes_undefined_in_cp1252(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes("id,name\nC1,Caf\xe9 \x81\n".encode("latin-1"))
    loaded = load_frame(path, "customers")
    assert loaded.source.encoding in ("cp1252", "latin-1")
    assert loaded.frame["name"][0] == "Café \x81"


def test_lines_count_quoted_line_breaks_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b'id,name\r\nC1,"Multi\r\nline\r\nname"\r\n\r\nC2,Two\r\nC3,"x,y"\r\n')
    loaded = load_frame(path, "customers")
    assert loaded.frame["id"].to_list() == ["C1", "C2", "C3"]
    assert loaded.frame["source_line"].to_list() == [2, 6, 7]
    assert loaded.frame["name"][2] == "x,y"


def test_ndjson_lines_skip_blank_lines(tmp_path):
    path = tmp_path / "customers.ndjson"
    path.write_text('{"id": "C1", "name": "A"}\n\n{"id": 2, "name": "B"}\n', encoding="utf-8")
    loaded = load_frame(path, "customers")
    assert loaded.frame["id"].to_list() == ["C1", "2"]
    assert loaded.frame["source_line"].to_list() == [1, 3]


def test_numeric_ids_from_typed_files_have_no_decimal_part(tmp_path):
    path = tmp_path / "customers.parquet"
    pl.DataFrame({"id": [1.0, 2.0], "name": ["a", "b"], "zip_code": [75001, 1000]}).write_parquet(
        path
    )
    loaded = load_frame(path, "customers")
    assert loaded.frame["id"].to_list() == ["1", "2"]
    assert loaded.frame["zip_code"].to_list() == ["75001", "1000"]


def test_messy_values_and_nothing_lost(tmp_path):
    """Rows in == rows out; every unparseable value has one issue with its file and line."""
    path = tmp_path / "invoices.csv"
    path.write_text(
        "N°;Client;Date;Statut;Montant HT;TVA;Devise;Type\n"
        "F1;C1;25/01/2025;Payée;1 234,56;246,91;€;abonnement\n"
        "F2;C2;31/02/2025;réglé;12,345;0;EUR;ponctuel\n"
        "F3;C3;01/02/2025;bizarre;abc;;;\n"
        "F4;C4;2025-03-01;impayé;(12,00);;USD;setup\n",
        encoding="utf-8",
    )
    mapping = {
        "invoices": {
            "columns": {
                "id": "N°",
                "customer_id": "Client",
                "issue_date": "Date",
                "status": "Statut",
                "amount_excluding_tax": "Montant HT",
                "tax_amount": "TVA",
                "currency": "Devise",
                "type": "Type",
            }
        }
    }
    loaded = load_frame(path, "invoices", mapping=mapping, source_name="invoices.csv")
    frame, issues = loaded.frame, loaded.parse_issues
    assert frame.height == 4
    assert frame["issue_date"].to_list() == [
        dt.date(2025, 1, 25), None, dt.date(2025, 2, 1), dt.date(2025, 3, 1)
    ]  # fmt: skip
    assert frame["status"].to_list() == ["paid", "paid", None, "unpaid"]
    assert frame["amount_excluding_tax"].to_list() == [
        Decimal("1234.56"), None, None, Decimal("-12.00")
    ]  # fmt: skip
    assert frame["currency"].to_list() == ["EUR", "EUR", None, "USD"]
    assert frame["type"].to_list() == ["subscription", "one_off", None, "one_off"]
    found = {(r["line"], r["column"], r["raw_value"]) for r in issues.iter_rows(named=True)}
    assert found == {
        (3, "issue_date", "31/02/2025"),
        (3, "amount_excluding_tax", "12,345"),
        (4, "status", "bizarre"),
        (4, "amount_excluding_tax", "abc"),
    }
    assert set(issues["file"]) == {"invoices.csv"}
    assert set(issues["frame"]) == {"invoices"}
    assert issues.filter(pl.col("line") == 4)["record_id"].unique().to_list() == ["F3"]
    amount_reasons = issues.filter(pl.col("column") == "amount_excluding_tax")["reason"]
    assert all("source column 'Montant HT'" in reason for reason in amount_reasons)


def test_undecidable_day_order_gives_one_column_issue(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(
        "id,customer_id,issue_date,status,amount_excluding_tax,currency\n"
        "I1,C1,01/02/2025,paid,1,EUR\nI2,C1,03/04/2025,paid,1,EUR\n",
        encoding="utf-8",
    )
    issues = load_frame(path, "invoices").parse_issues
    assert issues.height == 1
    assert issues["line"][0] is None and issues["column"][0] == "issue_date"
    assert "day_first" in issues["reason"][0]
    settled = load_frame(path, "invoices", mapping={"options": {"day_first": False}})
    assert settled.parse_issues.is_empty()
    assert settled.frame["issue_date"][0] == dt.date(2025, 1, 2)


def test_sibling_date_columns_share_the_day_order(tmp_path):
    path = tmp_path / "invoices.csv"
    path.write_text(
        "id,customer_id,issue_date,period_start,status,amount_excluding_tax,currency\n"
        "I1,C1,25/01/2025,01/02/2025,paid,1,EUR\n",
        encoding="utf-8",
    )
    loaded = load_frame(path, "invoices")
    assert loaded.parse_issues.is_empty()
    assert loaded.frame["period_start"][0] == dt.date(2025, 2, 1)


def test_constants_extra_columns_and_fills(tmp_path):
    (tmp_path / "subscriptions.csv").write_text(
        "id,customer_id,start_date,interval_unit,interval_count,amount_excluding_tax,Segment\n"
        "S1,C1,2025-01-01,quarterly,,€300.00,SMB\n"
        "S2,C1,2025-01-01,month,2,$20,\n"
        "S3,C2,2025-01-01,3 months,,10,ENT\n",
        encoding="utf-8",
    )
    mapping = {
        "options": {"extra_columns": "custom_properties"},
        "subscriptions": {"constants": {"status": "actif"}},
    }
    loaded = load_dataset(tmp_path, mapping=mapping, frames=["subscriptions"])
    subs = loaded.subscriptions
    assert subs["status"].to_list() == ["active"] * 3
    assert subs["interval_unit"].to_list() == ["month"] * 3
    assert subs["interval_count"].to_list() == [3, 2, 3]
    assert subs["currency"].to_list() == ["EUR", "USD", None]  # from the amounts' symbols
    assert [json.loads(v) for v in subs["custom_properties"]] == [
        {"Segment": "SMB"}, {"Segment": None}, {"Segment": "ENT"}
    ]  # fmt: skip
    assert loaded.customers.is_empty() and loaded.invoices.is_empty()
    assert [s.frame for s in loaded.sources] == ["subscriptions"]


def test_dataset_from_folder_with_mapped_file_names(tmp_path):
    write_customers(tmp_path / "clients.xlsx", "xlsx")
    (tmp_path / "subscriptions.json").write_text(
        json.dumps(
            {
                "data": [
                    {
                        "id": "S1",
                        "customer_id": "C1",
                        "start_date": "2025-01-01",
                        "interval_unit": "monthly",
                        "interval_count": 1,
                        "amount_excluding_tax": 10.5,
                        "currency": "eur",
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "factures.csv").write_text(INVOICES_CSV, encoding="utf-8")
    dataset = load_dataset(tmp_path, mapping={"customers": {"file": "clients.xlsx"}})
    assert dataset.customers.height == 3
    assert dataset.subscriptions["amount_excluding_tax"].to_list() == [Decimal("10.50")]
    assert dataset.invoices["source_file"].to_list() == ["factures.csv"] * 2
    assert {s.frame: s.format for s in dataset.sources} == {
        "customers": "xlsx", "subscriptions": "json", "invoices": "csv"
    }  # fmt: skip
    for name, frame in dataset.frames().items():
        assert frame.schema == frames.canonical_schema(name)


def test_explicit_paths(tmp_path):
    path = tmp_path / "export_2025.csv"
    path.write_text(INVOICES_CSV, encoding="utf-8")
    dataset = load_dataset(paths={"invoices": path}, frames=["invoices"])
    assert dataset.invoices.height == 2
    assert dataset.invoices["source_file"][0] == str(path)


# --- bad files ------------------------------------------------------------------------------


def expect_input_error(call, *parts):
    with pytest.raises(InputError) as caught:
        call()
    message = caught.value.message
    for part in parts:
        assert part in message, message
    assert "how to fix" in message
    return message


def test_missing_file(tmp_path):
    expect_input_error(lambda: load_frame(tmp_path / "customers.csv", "customers"), "not found")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "customers.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0")
    expect_input_error(lambda: load_frame(path, "customers"), "unsupported", ".xlsx")


@pytest.mark.parametrize("content", [b"", b"  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "customers.csv"
    path.write_bytes(content)
    expect_input_error(lambda: load_frame(path, "customers"), "empty", str(path))


def test_unreadable_files(tmp_path):
    folder = tmp_path / "customers.csv"
    folder.mkdir()
    expect_input_error(lambda: load_frame(folder, "customers"), "not a file")
    broken = tmp_path / "customers.xlsx"
    broken.write_bytes(b"this is no spreadsheet")
    expect_input_error(lambda: load_frame(broken, "customers"), "cannot read", "xlsx")
    parquet = tmp_path / "customers.parquet"
    parquet.write_bytes(b"PAR1 not really")
    expect_input_error(lambda: load_frame(parquet, "customers"), "cannot read", "parquet")


def test_required_column_absent(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("id,nom\nC1,A\n", encoding="utf-8")
    expect_input_error(lambda: load_frame(path, "customers"), "name", "'nom'", str(path))


def test_malformed_json(tmp_path):
    path = tmp_path / "customers.json"
    path.write_text('[\n{"id": "C1", "name": "A"},\n{"id": "C2",, "name": "B"}\n]', "utf-8")
    expect_input_error(lambda: load_frame(path, "customers"), "malformed JSON", "line 3")
    ndjson = tmp_path / "customers.ndjson"
    ndjson.write_text('{"id": "C1", "name": "A"}\n{"id": "C2", "name": \n', "utf-8")
    expect_input_error(lambda: load_frame(ndjson, "customers"), "malformed NDJSON", "line 2")


def test_ragged_csv(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text("id,name\nC1,A,extra\n", encoding="utf-8")
    expect_input_error(lambda: load_frame(path, "customers"), "cannot read", "quoted")


def test_folder_without_a_frame_file(tmp_path):
    write_customers(tmp_path / "customers.csv", "csv")
    message = expect_input_error(
        lambda: load_dataset(tmp_path), "no subscriptions file", "customers.csv", "frames="
    )
    assert "subscriptions.*" in message


def test_two_candidate_files(tmp_path):
    write_customers(tmp_path / "customers.csv", "csv")
    write_customers(tmp_path / "customers.json", "json")
    expect_input_error(
        lambda: load_dataset(tmp_path, frames=["customers"]), "several customers files"
    )


def test_missing_data_folder(tmp_path):
    expect_input_error(lambda: load_dataset(tmp_path / "nope"), "data folder not found")


def test_sample_export_reads_back_exactly(tmp_path):
    """The generator's ERP-style export (xlsx, cp1252 `;` CSV, JSON, mapping.toml) loads back to
    its canonical frames, and each planted parse-level defect is exactly one parse issue."""
    from fincome_toolkit.sample import write_sample

    result = write_sample(tmp_path, customers=120, seed=3)
    dataset = load_dataset(tmp_path, mapping=tmp_path / "mapping.toml")
    for name, expected in result.dataset.frames().items():
        got = dataset.frame(name)
        compared = [c for c in expected.columns if c not in ("custom_properties", "source_file")]
        compared.remove("source_line")
        assert got.select(compared).equals(expected.select(compared)), name
    parse_kinds = ["unparseable_date", "unparseable_amount", "unknown_status",
                   "unknown_currency", "unknown_country"]  # fmt: skip
    planted = result.manifest.filter(pl.col("kind").is_in(parse_kinds))
    found = dataset.parse_issues.select("frame", pl.col("record_id").alias("id"), "column")
    assert planted.select("frame", "id", "column").sort(pl.all()).equals(found.sort(pl.all()))


def test_read_source_gives_the_files_columns_as_text_for_column_pickers(tmp_path):
    path = tmp_path / "clients.csv"
    path.write_bytes("Code;Raison sociale;Montant\nC1;Café Dupont;1 234,50\n".encode("cp1252"))
    raw = read_source(path)
    assert raw.columns == ["Code", "Raison sociale", "Montant"]
    assert raw.row(0) == ("C1", "Café Dupont", "1 234,50")
