"""Customer rules: identity, hierarchy and duplicates (domain notes §4, customers)."""

from __future__ import annotations

import polars as pl

from fincome_toolkit.rule_base import (
    ROW,
    Rule,
    conflicting_duplicates,
    fmt,
    offending,
    quoted,
    repeated_ids,
    rule,
    text,
)
from fincome_toolkit.rule_context import RuleContext

# Legal-form words dropped before comparing company names ("Acme SAS" and "ACME" are one company).
LEGAL_FORMS = (
    "sas", "sasu", "sarl", "sa", "eurl", "sci", "gmbh", "ag", "kg", "ltd", "limited", "llc", "inc",
    "incorporated", "corp", "corporation", "co", "plc", "bv", "nv", "srl", "spa", "sl", "ab", "as",
    "oy", "pty", "company",
)  # fmt: skip
MAX_HIERARCHY_DEPTH = 10_000  # a safety net only: real hierarchies are a handful of levels deep

CUS_001 = Rule(
    "CUS-001",
    "customers",
    "error",
    title="Required customer field is empty",
    why="A customer without an id cannot be referenced by its subscriptions and invoices; one "
    "without a name is unreadable in every Fincome report.",
    fix="Fill the customer's id and name in the ERP (the company name as invoiced).",
    unit="customers",
)
CUS_002 = Rule(
    "CUS-002",
    "customers",
    "error",
    title="Customer id appears on several rows",
    why="Fincome keys customers by id: repeated rows either duplicate the customer or overwrite "
    "each other, and the uploader cannot tell which one is right.",
    fix="Keep one row per customer id in the export (exact copies are removed by apply_fixes).",
    unit="customers",
    check=lambda ctx: repeated_ids(ctx, "customers"),
)
CUS_004 = Rule(
    "CUS-004",
    "customers",
    "warning",
    title="Invalid e-mail address",
    why="The e-mail identifies the customer for dunning and for merging duplicates; a malformed "
    "one is usually a typo or two addresses in one field.",
    fix="Correct the billing e-mail on the customer record (one address, name@domain.tld).",
    unit="customers",
)
CUS_005 = Rule(
    "CUS-005",
    "customers",
    "error",
    title="Country is not an ISO 3166-1 alpha-2 code",
    why="Fincome segments MRR by country with ISO codes and rejects other values.",
    fix="Set the customer's country to its two-letter ISO code (FR, DE, US...).",
    unit="customers",
)


@rule(
    "CUS-003",
    "customers",
    "error",
    title="Same customer id with conflicting attributes",
    why="One id, two versions of the customer: whichever Fincome keeps, the other's name, country "
    "or parent is lost, and segments and hierarchies come out wrong.",
    fix="Merge the rows in the ERP so the id carries one set of attributes, or give each "
    "customer its own id.",
)
def conflicting_customer(ctx: RuleContext) -> pl.LazyFrame:
    return conflicting_duplicates(ctx, "customers", label="customer")


@rule(
    "CUS-006",
    "customers",
    "error",
    title="Parent customer does not exist",
    why="A root_parent_id pointing nowhere breaks the account hierarchy: Fincome cannot roll the "
    "child's MRR up to its group.",
    fix="Export the parent customer too, or correct/clear root_parent_id on the child.",
)
def unknown_parent(ctx: RuleContext) -> pl.LazyFrame:
    orphans = ctx.customers.filter(
        pl.col("root_parent_id").is_not_null()
        & ~pl.col("root_parent_id").is_in(ctx.customer_ids.implode())
    )
    return offending(
        orphans,
        column="root_parent_id",
        value="root_parent_id",
        message=fmt("parent customer '{}' is not in the customers file", "root_parent_id"),
    )


def _cycle_members(parents: pl.DataFrame) -> pl.DataFrame:
    """Ids on a parent cycle: repeatedly drop customers nobody points to; what remains loops."""
    remaining = parents
    for _ in range(MAX_HIERARCHY_DEPTH):
        kept = remaining.filter(pl.col("id").is_in(remaining["parent"].implode()))
        if kept.height == remaining.height:
            break
        remaining = kept
    return remaining


def _cycle_labels(cycle: pl.DataFrame) -> pl.DataFrame:
    """Each cycle member with the smallest id of its cycle (labels spread along the pointers)."""
    labelled = cycle.with_columns(label=pl.col("id"))
    for _ in range(MAX_HIERARCHY_DEPTH):
        parent_label = labelled.select(pl.col("id").alias("parent"), pl.col("label").alias("_up"))
        updated = labelled.join(parent_label, on="parent", how="left").with_columns(
            label=pl.min_horizontal("label", "_up")
        )
        updated = updated.drop("_up")
        if updated["label"].equals(labelled["label"]):
            break
        labelled = updated
    return labelled


@rule(
    "CUS-007",
    "customers",
    "error",
    title="Parent hierarchy forms a cycle",
    why="A customer that is its own ancestor has no root: Fincome cannot place it in any group, "
    "and group MRR is undefined.",
    fix="Break the loop: the top company of the group must have an empty root_parent_id.",
)
def parent_cycle(ctx: RuleContext) -> pl.LazyFrame:
    parents = (
        ctx.customers.filter(pl.col("id").is_not_null() & pl.col("root_parent_id").is_not_null())
        .unique("id", keep="first")
        .select("id", parent=pl.col("root_parent_id"))
    )
    labelled = _cycle_labels(_cycle_members(parents))
    cycles = labelled.group_by("label").agg(
        members=pl.col("id").sort().str.join(", "), size=pl.len()
    )
    members = labelled.join(cycles, on="label").select("id", "members", "size")
    rows = ctx.customers.join(members, on="id")
    return offending(
        rows,
        column="root_parent_id",
        value="root_parent_id",
        message=pl.when(pl.col("size") == 1)
        .then(fmt("customer '{}' is its own parent", pl.col("id")))
        .otherwise(
            fmt(
                "root_parent_id '{}' leads back to this customer: a cycle of {} customers ({})",
                "root_parent_id",
                "size",
                "members",
            )
        ),
    )


_LEGAL_FORM_WORDS = r"\b(?:" + "|".join(LEGAL_FORMS) + r")\b"
# Accented Latin letters folded to ASCII with one Aho-Corasick pass (faster than NFKD + regex).
_ACCENTS = dict(zip("àáâãäåāçćčèéêëēęěìíîïīłñńňòóôõöøōřśšùúûüūůýÿźžż",
                    "aaaaaaaccceeeeeeeiiiiilnnnooooooorssuuuuuuyyzzz", strict=True))  # fmt: skip
_ACCENTS |= {"œ": "oe", "æ": "ae", "ß": "ss"}


def normalised_name() -> pl.Expr:
    """Company name reduced to its letters and digits: lower case, accents folded, legal forms
    and punctuation removed ("ACME S.A.S." and "Acme" match). String expressions only."""
    return (
        pl.col("name")
        .str.to_lowercase()
        .str.replace_many(list(_ACCENTS), list(_ACCENTS.values()))
        .str.replace_all(".", "", literal=True)  # S.A.S. → sas
        .str.replace_all(_LEGAL_FORM_WORDS, "")
        .str.replace_all(r"[^\p{L}\p{N}]+", "")
    )


def _same_key_other_ids(customers: pl.LazyFrame, key: str, label: str) -> pl.LazyFrame:
    keyed = customers.filter(pl.col(key).is_not_null() & (pl.col(key) != ""))
    groups = keyed.group_by(key).agg(_ids=pl.col("id").unique().sort())
    return (
        keyed.join(groups.filter(pl.col("_ids").list.len() > 1), on=key)
        .with_columns(_others=pl.col("_ids").list.set_difference(pl.concat_list("id")).list.sort())
        .select(ROW, "id", "name", "email", _others=pl.col("_others"), _by=pl.lit(label))
    )


@rule(
    "CUS-008",
    "customers",
    "warning",
    title="Probable duplicate customer under another id",
    why="The same company under two ids splits its MRR in two: Fincome counts two customers, "
    "churn on one and new business on the other, and ARPA drops.",
    fix="Merge the customers in the ERP (move subscriptions and invoices to one id).",
)
def probable_duplicate_customer(ctx: RuleContext) -> pl.LazyFrame:
    customers = (
        ctx.customers.lazy()
        .filter(pl.col("id").is_not_null())
        .with_columns(
            _name_key=normalised_name(),
            _email_key=pl.col("email").str.strip_chars().str.to_lowercase(),
        )
    )
    matches = pl.concat(
        [
            _same_key_other_ids(customers, "_name_key", "name"),
            _same_key_other_ids(customers, "_email_key", "email"),
        ]
    )
    per_row = matches.group_by(ROW, "id", "name", "email").agg(
        _by=pl.col("_by").unique().sort().str.join(" and "),
        _others=pl.col("_others")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique()
        .sort()
        .str.join(", "),
    )
    return offending(
        per_row,
        column="name",
        value=fmt("{} <{}>", text("name"), text("email")),
        message=fmt(
            "same {} as customer(s) {} ({} {})",
            "_by",
            "_others",
            quoted("name"),
            fmt("<{}>", text("email")),
        ),
    )


@rule(
    "CUS-009",
    "customers",
    "info",
    title="Customer without any subscription",
    why="A customer with no subscription has no subscription-based MRR; normal for one-off "
    "buyers, suspicious for a recurring customer whose contract was not exported.",
    fix="Check the customer's contracts in the ERP and include them in the subscriptions export.",
)
def customer_without_subscription(ctx: RuleContext) -> pl.LazyFrame:
    subscribers = ctx.subscriptions["customer_id"].drop_nulls().unique().implode()
    parents = ctx.customers["root_parent_id"].drop_nulls().unique().implode()
    lonely = ctx.customers.filter(
        pl.col("id").is_not_null()
        & ~pl.col("id").is_in(subscribers)
        # a group's parent company often holds no contract itself
        & ~pl.col("id").is_in(parents)
    )
    invoice_counts = (
        ctx.invoices.filter(pl.col("customer_id").is_in(lonely["id"].implode()))
        .group_by(pl.col("customer_id").alias("id"))
        .agg(_invoices=pl.len())
    )
    lonely = lonely.join(invoice_counts, on="id", how="left").with_columns(
        pl.col("_invoices").fill_null(0)
    )
    return offending(
        lonely,
        column="id",
        value="id",
        message=fmt("no subscription references this customer (it has {} invoices)", "_invoices"),
    )


CUSTOMER_RULES: tuple[Rule, ...] = (
    CUS_001,
    CUS_002,
    conflicting_customer,
    CUS_004,
    CUS_005,
    unknown_parent,
    parent_cycle,
    probable_duplicate_customer,
    customer_without_subscription,
)
