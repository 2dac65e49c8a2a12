"""The seeded sample generator: determinism, sizes, clean-data invariants, planted defects, and
the written export read back by the real loader."""

from __future__ import annotations

import re
import tomllib
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fincome_toolkit
from fincome_toolkit import frames
from fincome_toolkit.cli import main
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.loading import load_dataset
from fincome_toolkit.sample import AS_OF, DEFECT_KINDS, generate, write_export, write_sample
from fincome_toolkit.sample_defects import PARSE_LEVEL

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = ROOT / "sample_data"
LAST_FULL_MONTH_END = date(2026, 10, 31)  # month ends before AS_OF: both MRR views are complete
PROVENANCE = ["source_file", "source_line"]


@pytest.fixture(scope="module")
def clean():
    return generate(seed=11, defects=False)


@pytest.fixture(scope="module")
def dirty():
    return generate(seed=11)


def _months_per_interval() -> pl.Expr:
    return pl.when(pl.col("interval_unit") == "year").then(12).otherwise(pl.col("interval_count"))


def _month_ends() -> pl.DataFrame:
    ends = pl.date_range(date(2023, 11, 1), LAST_FULL_MONTH_END, "1mo", eager=True).dt.month_end()
    return pl.DataFrame({"month_end": ends})


def twelve_times_mrr(dataset: frames.Dataset) -> tuple[pl.DataFrame, pl.DataFrame]:
    """12 x MRR per customer and month end, from subscriptions and from recurring invoices.

    Computed independently of the generator: active at the month end, half-open dates, amount
    spread over the whole months the interval or the service period covers (12 x keeps it exact).
    """
    months = _month_ends()
    subs = (
        dataset.subscriptions.join(months, how="cross")
        .filter(
            pl.col("start_date") <= pl.col("month_end"),
            pl.col("end_date").is_null() | (pl.col("end_date") > pl.col("month_end")),
        )
        .group_by("customer_id", "month_end")
        .agg(mrr12=(pl.col("amount_excluding_tax") * (12 // _months_per_interval())).sum())
    )
    covered = (pl.col("period_end").dt.year() * 12 + pl.col("period_end").dt.month()) - (
        pl.col("period_start").dt.year() * 12 + pl.col("period_start").dt.month()
    )
    invoices = (
        dataset.invoices.filter(pl.col("type") == "subscription")
        .join(months, how="cross")
        .filter(
            pl.col("period_start") <= pl.col("month_end"),
            pl.col("period_end") > pl.col("month_end"),
        )
        .group_by("customer_id", "month_end")
        .agg(mrr12=(pl.col("amount_excluding_tax") * (12 // covered)).sum())
    )
    return subs, invoices


def _recurring_with_position(invoices: pl.DataFrame) -> pl.DataFrame:
    return (
        invoices.filter(pl.col("type") == "subscription")
        .sort("subscription_id", "period_start")
        .with_columns(k=pl.int_range(pl.len()).over("subscription_id"))
    )


# -- determinism and sizes --------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_manifest():
    first, second = generate(customers=80, seed=5), generate(customers=80, seed=5)
    for name in frames.FRAME_NAMES:
        assert first.dataset.frame(name).equals(second.dataset.frame(name))
    assert first.manifest.equals(second.manifest)
    assert not generate(customers=80, seed=6).dataset.invoices.equals(first.dataset.invoices)


def test_default_sizes_and_fixed_dates(clean):
    counts = clean.counts
    assert counts["customers"] == 200
    assert 285 <= counts["subscriptions"] <= 300
    assert 2700 <= counts["invoices"] <= 3300
    assert clean.as_of == AS_OF == date(2026, 11, 1)
    assert clean.dataset.subscriptions["start_date"].min() >= date(2023, 11, 1)


@pytest.mark.parametrize(
    ("customers", "subscriptions", "invoices"), [(150, 300, 3000), (100, 120, 800), (50, 60, 1000)]
)
def test_sizes_land_near_the_request(customers, subscriptions, invoices):
    counts = generate(
        customers=customers, subscriptions=subscriptions, invoices=invoices, defects=False
    ).counts
    assert counts["customers"] == customers
    assert 0.95 * subscriptions <= counts["subscriptions"] <= subscriptions
    assert abs(counts["invoices"] - invoices) <= 0.1 * invoices


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"customers": 10, "subscriptions": 5}, "at least one subscription"),
        ({"customers": 150, "subscriptions": 300, "invoices": 6000}, "cannot be spread"),
        ({"customers": 0}, "at least 1 customer"),
    ],
)
def test_impossible_sizes_raise_a_config_error(sizes, message):
    with pytest.raises(ConfigError, match=message):
        generate(**sizes, defects=False)


def test_too_small_for_every_defect_says_so():
    with pytest.raises(ConfigError, match="too small to plant"):
        generate(customers=15, defects=True)


# -- clean data invariants ----------------------------------------------------------------------


def test_frames_are_canonical_with_unique_ids(clean):
    for name, frame in clean.dataset.frames().items():
        assert frame.schema == frames.canonical_schema(name)
        assert frame["id"].is_unique().all(), name
        assert frame["id"].null_count() == 0
    customers = clean.dataset.customers
    assert customers["email"].is_unique().all()
    assert customers["email"].str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$").all()
    assert customers["root_parent_id"].drop_nulls().is_in(customers["id"].implode()).all()
    assert clean.manifest.height == 0 and clean.dataset.parse_issues.height == 0


def test_periods_follow_the_anchor_without_gap_or_overlap(clean):
    subs = clean.dataset.subscriptions.select(
        pl.col("id").alias("subscription_id"),
        "start_date",
        "end_date",
        months=_months_per_interval(),
    )
    periods = _recurring_with_position(clean.dataset.invoices).join(subs, on="subscription_id")
    offset = pl.col("start_date").dt.offset_by
    expected_start = offset(pl.format("{}mo", pl.col("k") * pl.col("months")))
    expected_end = offset(pl.format("{}mo", (pl.col("k") + 1) * pl.col("months")))
    assert periods.filter(pl.col("period_start") != expected_start).height == 0
    assert periods.filter(pl.col("period_end") != expected_end).height == 0
    last = periods.group_by("subscription_id").agg(
        pl.col("period_end").max(), pl.col("end_date").first()
    )
    assert (
        last.filter(
            pl.col("end_date").is_not_null() & (pl.col("end_date") != pl.col("period_end"))
        ).height
        == 0
    )
    assert set(periods["subscription_id"]) == set(subs["subscription_id"])
    assert periods["period_start"].max() < AS_OF


def test_a_31_january_anchor_gives_29_february_then_31_march(clean):
    showcase = clean.dataset.subscriptions.filter(
        pl.col("start_date") == date(2024, 1, 31), pl.col("interval_count") == 1
    )
    assert showcase.height >= 1
    periods = clean.dataset.invoices.filter(pl.col("subscription_id") == showcase["id"][0])
    ends = periods.sort("period_start")["period_end"].to_list()
    assert ends[:3] == [date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]


def test_subscription_mrr_equals_invoice_mrr_for_every_customer_month(clean):
    subs, invoices = twelve_times_mrr(clean.dataset)
    both = subs.join(invoices, on=["customer_id", "month_end"], how="full", coalesce=True)
    assert both.height > 1000
    assert both.filter(pl.col("mrr12").ne_missing(pl.col("mrr12_right"))).height == 0


def test_statuses_and_dates_agree_with_as_of(clean):
    subs = clean.dataset.subscriptions
    assert subs.filter((pl.col("status") == "active") != pl.col("end_date").is_null()).height == 0
    assert subs.filter(pl.col("end_date") > AS_OF).height == 0
    assert (
        subs.filter(
            (pl.col("status") == "cancelled") != pl.col("cancelled_at").is_not_null()
        ).height
        == 0
    )
    cancelled = subs.filter(pl.col("status") == "cancelled")
    assert cancelled.filter(pl.col("cancelled_at") > pl.col("end_date")).height == 0
    invoices = clean.dataset.invoices.join(
        subs.select(pl.col("id").alias("subscription_id"), sub_status="status"),
        on="subscription_id",
    )
    unsettled = pl.col("status").is_in(["open", "unpaid"])
    assert invoices.filter(unsettled & (pl.col("sub_status") != "active")).height == 0
    assert invoices.filter(pl.col("issue_date") > AS_OF).height == 0
    assert (
        invoices.filter(pl.col("due_date") != pl.col("issue_date") + timedelta(days=30)).height == 0
    )
    assert set(invoices["status"].unique()) == {"open", "paid", "unpaid"}


def test_tax_is_twenty_percent_rounded_half_up(clean):
    pairs = clean.dataset.invoices.select("amount_excluding_tax", "tax_amount").rows()
    cent = Decimal("0.01")
    assert all(
        tax == (amount * Decimal("0.2")).quantize(cent, ROUND_HALF_UP) for amount, tax in pairs
    )


def test_one_offs_reference_a_running_subscription_and_carry_no_period(clean):
    one_offs = clean.dataset.invoices.filter(pl.col("type") == "one_off").join(
        clean.dataset.subscriptions.select(
            pl.col("id").alias("subscription_id"), "start_date", "end_date"
        ),
        on="subscription_id",
    )
    assert one_offs.height > 0
    assert (
        one_offs["period_start"].null_count()
        == one_offs["period_end"].null_count()
        == one_offs.height
    )
    inside = (pl.col("issue_date") >= pl.col("start_date")) & (
        pl.col("end_date").is_null() | (pl.col("issue_date") < pl.col("end_date"))
    )
    assert one_offs.filter(~inside).height == 0


def test_histories_have_switches_reactivations_and_variety(clean):
    subs = clean.dataset.subscriptions
    switches = subs.join(
        subs.select("customer_id", pl.col("start_date").alias("end_date"), next_plan="plan_id"),
        on=["customer_id", "end_date"],
    )
    assert switches.height > 10 and set(switches["status"]) == {"ended"}
    churned_then_back = (
        subs.filter(pl.col("status") == "cancelled")
        .join(subs, on="customer_id", suffix="_later")
        .filter(pl.col("start_date_later") > pl.col("end_date"))
    )
    assert churned_then_back.height > 0
    assert set(subs["currency"]) == {"EUR", "USD", "GBP"}
    assert subs.group_by("customer_id").agg(pl.col("currency").n_unique())["currency"].max() == 1
    assert {1, 3, 12} <= set(subs.select(_months_per_interval()).to_series())
    assert subs["quantity"].max() > 1
    assert clean.dataset.customers["root_parent_id"].null_count() < clean.counts["customers"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), customers=st.integers(3, 60), per_customer=st.floats(1, 3))
def test_any_clean_history_is_consistent(seed, customers, per_customer):
    sample = generate(
        customers=customers, subscriptions=round(customers * per_customer), seed=seed, defects=False
    )
    subs, invoices = twelve_times_mrr(sample.dataset)
    both = subs.join(invoices, on=["customer_id", "month_end"], how="full", coalesce=True)
    assert both.filter(pl.col("mrr12").ne_missing(pl.col("mrr12_right"))).height == 0
    assert sample.dataset.invoices["id"].is_unique().all()


# -- planted defects ----------------------------------------------------------------------------


def test_every_contributing_kind_is_planted_with_manifest_rows(dirty):
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Planted defect kinds", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z_]+)`", section))
    assert listed <= set(DEFECT_KINDS)
    per_kind = dirty.manifest.group_by("kind").len()
    assert set(per_kind["kind"]) == set(DEFECT_KINDS)
    assert per_kind["len"].min() >= 3
    assert dirty.manifest.columns == ["kind", "frame", "id", "column", "detail"]


def test_each_planted_record_carries_one_defect_and_exists(dirty):
    manifest = dirty.manifest
    assert manifest.select("frame", "id").is_unique().all()
    for name in frames.FRAME_NAMES:
        ids = manifest.filter(pl.col("frame") == name)["id"]
        assert ids.is_in(dirty.dataset.frame(name)["id"].implode()).all(), name


def test_parse_level_defects_are_nulls_with_predicted_issues(dirty):
    planted = dirty.manifest.filter(pl.col("kind").is_in(list(PARSE_LEVEL)))
    issues = dirty.dataset.parse_issues.select(
        "frame", pl.col("record_id").alias("id"), "column", pl.col("raw_value").alias("detail")
    )
    assert issues.sort(pl.all()).equals(planted.drop("kind").sort(pl.all()))
    for frame, record_id, column in planted.select("frame", "id", "column").rows():
        value = dirty.dataset.frame(frame).filter(pl.col("id") == record_id)[column]
        assert value.to_list() == [None]


def test_defects_leave_every_other_record_as_generated(clean, dirty):
    """Same seed with and without defects: each record that differs is explained by the manifest
    (its own id, its subscription, or an id the manifest's detail names)."""
    named = set(dirty.manifest["id"]) | set(
        re.findall(r"\b(?:CUS|SUB|INV)-\d+", " ".join(dirty.manifest["detail"]))
    )
    for name in frames.FRAME_NAMES:
        before, after = clean.dataset.frame(name), dirty.dataset.frame(name)
        changed = pl.concat(
            [
                before.join(after, on=before.columns, how="anti", nulls_equal=True),
                after.join(before, on=before.columns, how="anti", nulls_equal=True),
            ]
        )
        explained = pl.col("id").is_in(list(named))
        if name == "invoices":
            explained = explained | pl.col("subscription_id").is_in(list(named))
        assert changed.height > 0
        assert changed.filter(~explained).height == 0, changed.filter(~explained)


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("duplicate_invoice_id", lambda ds, i: ds.invoices.filter(pl.col("id") == i).height == 2),
        ("missing_name", lambda ds, i: ds.customers.filter(pl.col("id") == i)["name"][0] is None),
        ("negative_tax", lambda ds, i: ds.invoices.filter(pl.col("id") == i)["tax_amount"][0] < 0),
        (
            "future_issue_date",
            lambda ds, i: ds.invoices.filter(pl.col("id") == i)["issue_date"][0] > AS_OF,
        ),
        (
            "status_contradicts_dates",
            lambda ds, i: ds.subscriptions.filter(pl.col("id") == i)["status"][0] == "active",
        ),
        (
            "customer_without_subscription",
            lambda ds, i: i not in set(ds.subscriptions["customer_id"]),
        ),
        (
            "subscription_without_invoice",
            lambda ds, i: i not in set(ds.invoices["subscription_id"]),
        ),
    ],
)
def test_planted_defects_are_really_there(dirty, kind, check):
    ids = dirty.manifest.filter(pl.col("kind") == kind)["id"]
    assert all(check(dirty.dataset, record_id) for record_id in ids)


# -- the written export, read back by the loader ------------------------------------------------


def _assert_round_trip(result, folder: Path) -> None:
    loaded = load_dataset(folder, mapping=folder / "mapping.toml")
    for name in frames.FRAME_NAMES:
        expected = result.dataset.frame(name).drop(PROVENANCE)
        assert loaded.frame(name).drop(PROVENANCE).equals(expected), name
    predicted = result.manifest.filter(pl.col("kind").is_in(list(PARSE_LEVEL))).select(
        "frame", pl.col("id").alias("record_id"), "column", pl.col("detail").alias("raw_value")
    )
    reported = loaded.parse_issues.select("frame", "record_id", "column", "raw_value")
    assert reported.sort(pl.all()).equals(predicted.sort(pl.all()))


def test_erp_export_looks_like_an_erp_and_loads_back_exactly(dirty, tmp_path):
    written = write_export(dirty, tmp_path)
    assert {p.name for p in written.values()} == {
        "clients.xlsx",
        "abonnements.json",
        "factures.csv",
        "mapping.toml",
        "manifest.csv",
    }
    raw = written["invoices"].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # cp1252, like a Windows ERP
    header, first = raw.decode("cp1252").splitlines()[:2]
    assert header.startswith("N° facture;Code client;")
    assert re.search(r";\d{2}/\d{2}/\d{4};", first), "DD/MM/YYYY dates"
    assert re.search(r";\d{1,3}(?: \d{3})*,\d{2};", first), "comma decimals"
    _assert_round_trip(dirty, tmp_path)


@pytest.mark.parametrize("file_format", ["csv", "parquet", "ndjson"])
def test_canonical_export_loads_back_exactly(dirty, tmp_path, file_format):
    written = write_export(dirty, tmp_path, style="canonical", formats=file_format)
    assert written["invoices"].name == f"invoices.{file_format}"
    _assert_round_trip(dirty, tmp_path)


def test_mapping_file_follows_the_loader_format(dirty, tmp_path):
    write_export(dirty, tmp_path)
    mapping = tomllib.loads((tmp_path / "mapping.toml").read_text(encoding="utf-8"))
    assert mapping["options"]["day_first"] is True
    assert mapping["options"]["extra_columns"] == "custom_properties"
    assert mapping["invoices"]["file"] == "factures.csv"
    assert mapping["invoices"]["columns"]["id"] == "N° facture"
    assert mapping["subscriptions"]["constants"] == {"interval_count": 1}


def test_bad_export_format_is_a_config_error(dirty, tmp_path):
    with pytest.raises(ConfigError, match="cannot write invoices as 'xlsx'"):
        write_export(dirty, tmp_path, style="canonical", formats={"invoices": "xlsx"})


# -- the shipped sample and the command line ----------------------------------------------------


def test_shipped_sample_data_is_what_the_documented_command_generates(tmp_path):
    """sample_data/ = `fincome-toolkit sample sample_data` (seed 0, default sizes)."""
    write_sample(tmp_path)
    generated = sorted(p.name for p in tmp_path.iterdir())  # other modules may add files there
    for name in generated:
        if name.endswith(".xlsx"):
            assert pl.read_excel(SAMPLE_DATA / name).equals(pl.read_excel(tmp_path / name))
        else:
            assert (SAMPLE_DATA / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert sum((SAMPLE_DATA / name).stat().st_size for name in generated) < 600_000


def test_cli_writes_a_clean_canonical_sample(tmp_path):
    result = CliRunner().invoke(
        main, ["sample", str(tmp_path), "--customers", "40", "--clean", "--style", "canonical"]
    )
    assert result.exit_code == 0, result.output
    assert "40 customers" in result.output and "0 planted defects" in result.output
    assert (tmp_path / "invoices.csv").is_file()
    assert pl.read_csv(tmp_path / "manifest.csv").height == 0


def test_cli_reports_impossible_sizes_without_traceback(tmp_path):
    arguments = ["sample", str(tmp_path), "--customers", "5", "--subscriptions", "2"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 2
    assert "at least one subscription" in result.output and "Traceback" not in result.output


def test_public_api_is_exported_and_documented():
    for name in ("generate", "write_export", "SampleResult"):
        assert name in fincome_toolkit.__all__
        assert getattr(fincome_toolkit, name).__doc__
