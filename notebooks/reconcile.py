import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="MRR and reconciliation")


@app.cell(hide_code=True)
def _():
    import datetime as dt
    import tempfile
    from pathlib import Path

    import marimo as mo
    import polars as pl

    from fincome_toolkit import (
        ContractSettings,
        FincomeClient,
        MrrOptions,
        Tolerance,
        apply_fixes,
        audit,
        load_finance_file,
        movement_detail,
        movements,
        movements_table,
        mrr_by_customer,
        mrr_chart,
        mrr_lines,
        pull,
        reconcile_finance,
        reconcile_fincome,
        reconcile_sources,
        sandbox,
    )
    from fincome_toolkit.errors import ToolkitError
    from fincome_toolkit.journal import Journal
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.sample import AS_OF
    from fincome_toolkit.upload import upload

    return (
        AS_OF,
        ContractSettings,
        dt,
        FincomeClient,
        Journal,
        MrrOptions,
        Path,
        Tolerance,
        ToolkitError,
        apply_fixes,
        audit,
        load_dataset,
        load_finance_file,
        mo,
        movement_detail,
        movements,
        movements_table,
        mrr_by_customer,
        mrr_chart,
        mrr_lines,
        pl,
        pull,
        reconcile_finance,
        reconcile_fincome,
        reconcile_sources,
        sandbox,
        tempfile,
        upload,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # MRR, its movements, and why numbers differ

    Before trusting Fincome's dashboards, check the numbers. This notebook computes **MRR**
    (monthly recurring revenue) from your export the way Fincome does, month by month, with its
    **movements** (new, expansion, contraction, churn, reactivation), then compares it:

    - **invoices vs subscriptions**: the two ways of computing MRR should agree; where they do
      not, the likely cause is given (an invoice not linked to its subscription, a gap, an
      overlap, a price that differs...);
    - **with finance's own file** (month, MRR and movements): total first, then movements;
    - **with what Fincome holds** (by default a local sandbox, filled here with your export).

    Definitions: a subscription counts in month M when it is active at the *end* of M; an
    amount billed every 3 months counts one third per month; tax and one-off invoices never
    count. Amounts stay in their own currency: pick one below.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    sample_dir = (mo.notebook_dir() / ".." / "sample_data").resolve()
    folder_input = mo.ui.text(
        value=mo.cli_args().get("data") or str(sample_dir), label="Export folder", full_width=True
    )
    fixes_switch = mo.ui.switch(value=True, label="apply the safe fixes first")
    source_picker = mo.ui.dropdown(
        options={"subscriptions (contract view)": "subscriptions", "invoices (billing view)": "invoices"},
        value="subscriptions (contract view)",
        label="Compute MRR from",
    )
    mo.vstack([folder_input, mo.hstack([source_picker, fixes_switch], justify="start", gap=2)])
    return fixes_switch, folder_input, sample_dir, source_picker


@app.cell(hide_code=True)
def _(AS_OF, Path, dt, folder_input, mo, sample_dir):
    # The sample's last whole month is the one before its "as of" day; yours, this month.
    _is_sample = Path(folder_input.value).expanduser().resolve() == sample_dir
    _last_day = AS_OF - dt.timedelta(days=1) if _is_sample else dt.date.today()
    until_input = mo.ui.date(value=_last_day.replace(day=1), label="MRR up to the month of")
    until_input
    return (until_input,)


@app.cell(hide_code=True)
def _(
    Path,
    ToolkitError,
    apply_fixes,
    fixes_switch,
    folder_input,
    load_dataset,
    MrrOptions,
    mo,
    mrr_by_customer,
    source_picker,
    until_input,
):
    data_dir = Path(folder_input.value).expanduser()
    _mapping = data_dir / "mapping.toml"
    try:
        _loaded = load_dataset(data_dir, mapping=_mapping if _mapping.is_file() else None)
    except ToolkitError as _error:
        mo.stop(True, mo.callout(mo.md(f"```\n{_error.message}\n```"), kind="danger"))
    dataset = apply_fixes(_loaded).dataset if fixes_switch.value else _loaded
    mrr = mrr_by_customer(
        dataset, source=source_picker.value, options=MrrOptions(until=until_input.value)
    )
    _by_currency = mrr.group_by("currency").agg(n=mrr["mrr"].len()).sort("n", descending=True)
    currency_picker = mo.ui.dropdown(
        options=_by_currency["currency"].drop_nulls().to_list(),
        value=_by_currency["currency"].drop_nulls().first(),
        label="Currency",
    )
    currency_picker
    return currency_picker, data_dir, dataset, mrr


@app.cell(hide_code=True)
def _(currency_picker, mo, movements, movements_table, mrr, mrr_chart, pl):
    currency = currency_picker.value
    mrr_in_currency = mrr.filter(pl.col("currency") == currency)
    monthly = movements(mrr_in_currency)
    _last = monthly.sort("month").row(-1, named=True)
    mo.vstack(
        [
            mo.md(f"## MRR in {currency}"),
            mo.hstack(
                [
                    mo.stat(f"{_last['end_mrr']:,.2f}", label=f"MRR {_last['month']:%Y-%m}", bordered=True),
                    mo.stat(f"{12 * _last['end_mrr']:,.2f}", label="ARR", bordered=True),
                    mo.stat(f"{_last['customers']:,}", label="paying customers", bordered=True),
                ],
                justify="start",
            ),
            mo.ui.altair_chart(mrr_chart(monthly, currency=currency), chart_selection=False),
            mo.md(
                "Bars are the movements of each month (gains up, losses down); the line is MRR "
                "at the end of the month. Every month, start + new + reactivation + expansion − "
                "contraction − churn = end, to the cent:"
            ),
            movements_table(monthly, currency=currency),
        ]
    )
    return currency, monthly, mrr_in_currency


@app.cell(hide_code=True)
def _(mo, monthly):
    _months = monthly.sort("month", descending=True)["month"].dt.strftime("%Y-%m").to_list()
    month_picker = mo.ui.dropdown(options=_months, value=_months[0], label="Month")
    movement_picker = mo.ui.dropdown(
        options=["every movement", "new", "reactivation", "expansion", "contraction", "churn", "unchanged"],
        value="every movement",
        label="Movement",
    )
    mo.vstack(
        [
            mo.md(
                "## One month, customer by customer\n\nPick a month to see which customers make "
                "its movements. Select a row to see the subscription or invoice lines behind it."
            ),
            mo.hstack([month_picker, movement_picker], justify="start", gap=2),
        ]
    )
    return month_picker, movement_picker


@app.cell(hide_code=True)
def _(month_picker, movement_detail, movement_picker, mo, mrr_in_currency, pl):
    _detail = movement_detail(mrr_in_currency).filter(
        pl.col("month").dt.strftime("%Y-%m") == month_picker.value
    )
    if movement_picker.value != "every movement":
        _detail = _detail.filter(pl.col("category") == movement_picker.value)
    _detail = _detail.sort(pl.col("change").abs(), descending=True)
    customer_table = mo.ui.table(
        _detail, selection="single", page_size=10, label=f"Customers in {month_picker.value}"
    )
    customer_table
    return (customer_table,)


@app.cell(hide_code=True)
def _(currency, customer_table, dataset, mo, mrr_lines, pl, source_picker):
    mo.stop(
        customer_table.value.is_empty(),
        mo.md("*Select a customer in the table to see its lines.*"),
    )
    _customer = customer_table.value["customer_id"][0]
    _lines = mrr_lines(dataset, source=source_picker.value).filter(
        pl.col("customer_id") == _customer, pl.col("currency") == currency
    )
    mo.vstack(
        [
            mo.md(f"**The {source_picker.value} lines of {_customer}** and how each counts:"),
            mo.ui.table(_lines, selection=None, page_size=10),
        ]
    )
    return


@app.cell(hide_code=True)
def _(dataset, mo, reconcile_sources):
    sources = reconcile_sources(dataset)
    cause_picker = mo.ui.dropdown(
        options=["every cause", *sources["cause"].unique().sort().to_list()],
        value="every cause",
        label="Cause",
    )
    mo.vstack(
        [
            mo.md(
                "## Invoices vs subscriptions\n\nCustomer-months where the invoices and the "
                "subscriptions give a different MRR, with the most likely cause first."
            ),
            mo.ui.table(
                sources.group_by("cause").len("customer_months").sort("customer_months", descending=True),
                selection=None,
                show_download=False,
            ),
            cause_picker,
        ]
    )
    return cause_picker, sources


@app.cell(hide_code=True)
def _(cause_picker, mo, pl, sources):
    _shown = sources
    if cause_picker.value != "every cause":
        _shown = sources.filter(pl.col("cause") == cause_picker.value)
    mo.ui.table(_shown, selection=None, page_size=10, label="Customer-months that differ")
    return


@app.cell(hide_code=True)
def _(currency, data_dir, mo):
    finance_input = mo.ui.text(
        value=str(data_dir / "finance_mrr.csv"), label="Finance's MRR file (CSV or XLSX)", full_width=True
    )
    finance_currency = mo.ui.text(value="EUR", label="Its currency")
    tolerance_input = mo.ui.text(value="0.01", label="Accepted difference (5 or 0.5%)")
    mo.vstack(
        [
            mo.md(
                "## With finance's file\n\nFinance's file has one row per month: `month` and "
                "`mrr` (or `arr`), optionally the movements (`new`, `expansion`, `contraction`, "
                "`churn`, `reactivation`). It covers one scope and one currency: it is compared "
                f"with our MRR in that currency (shown above: {currency})."
            ),
            finance_input,
            mo.hstack([finance_currency, tolerance_input], justify="start", gap=2),
        ]
    )
    return finance_currency, finance_input, tolerance_input


@app.cell(hide_code=True)
def _(
    Path,
    Tolerance,
    ToolkitError,
    finance_currency,
    finance_input,
    load_finance_file,
    mo,
    mrr,
    pl,
    reconcile_finance,
    tolerance_input,
):
    _path = Path(finance_input.value).expanduser()
    mo.stop(not _path.is_file(), mo.md(f"*No finance file at `{_path}`.*"))
    try:
        _finance, _measure = load_finance_file(_path)
        _tolerance = Tolerance.parse(tolerance_input.value)
    except (ToolkitError, ArithmeticError, ValueError) as _error:
        mo.stop(True, mo.callout(str(getattr(_error, "message", _error)), kind="danger"))
    _ours = mrr.filter(pl.col("currency") == finance_currency.value.strip().upper())
    versus_finance = reconcile_finance(_ours, _finance, tolerance=_tolerance, measure=_measure)
    _off = versus_finance.filter(~pl.col("within_tolerance"))
    mo.vstack(
        [
            mo.callout(
                mo.md(
                    f"**{_off.height} of {versus_finance.height} comparisons differ** beyond the "
                    "tolerance (toolkit − finance). Start with the totals, then the movements of "
                    "the same months."
                ),
                kind="warn" if _off.height else "success",
            ),
            mo.ui.table(_off, selection=None, page_size=10, label="Differences"),
            mo.accordion({"Every comparison": mo.ui.table(versus_finance, selection=None, page_size=12)}),
        ]
    )
    return (versus_finance,)


@app.cell(hide_code=True)
def _(ContractSettings, mo):
    fincome_picker = mo.ui.radio(
        options={
            "a local sandbox, filled with this export": "sandbox",
            "Fincome (key from FINCOME_API_KEY)": "fincome",
        },
        value="a local sandbox, filled with this export",
        label="Compare with what is held by",
    )
    fincome_url = mo.ui.text(value=ContractSettings().base_url, label="Fincome API URL", full_width=True)
    mo.vstack(
        [
            mo.md(
                "## With what Fincome holds\n\nEvery record of the export against the one "
                "Fincome holds, field by field: *missing* (not in Fincome), *extra* (only in "
                "Fincome), *different* (one row per field that differs)."
            ),
            fincome_picker,
            fincome_url,
        ]
    )
    return fincome_picker, fincome_url


@app.cell(hide_code=True)
async def _(
    AS_OF,
    ContractSettings,
    FincomeClient,
    Journal,
    audit,
    data_dir,
    dataset,
    fincome_picker,
    fincome_url,
    ToolkitError,
    mo,
    pull,
    sample_dir,
    sandbox,
    tempfile,
    upload,
):
    async def _fill_sandbox(running):
        """The sandbox starts empty: send the export first, as the upload notebook does."""
        checked = audit(dataset, as_of=AS_OF if data_dir.resolve() == sample_dir else None)
        journal_path = f"{tempfile.mkdtemp(prefix='fincome-reconcile-')}/journal.sqlite"
        with Journal(journal_path, base_url=running.base_url) as journal:
            async with FincomeClient(running.contract(), api_key=running.api_key) as client:
                await upload(dataset, client=client, journal=journal, audit=checked)

    if fincome_picker.value == "sandbox":
        with mo.status.spinner(title="Starting a sandbox and uploading the export to it ..."):
            with sandbox() as _running:
                await _fill_sandbox(_running)
                async with FincomeClient(_running.contract(), api_key=_running.api_key) as _client:
                    fincome = await pull(_client)
    else:
        try:
            async with FincomeClient(ContractSettings(base_url=fincome_url.value.strip())) as _client:
                fincome = await pull(_client)
        except ToolkitError as _error:
            mo.stop(True, mo.callout(mo.md(f"```\n{_error.message}\n```"), kind="danger"))
    return (fincome,)


@app.cell(hide_code=True)
def _(dataset, fincome, mo, reconcile_fincome):
    versus_fincome = reconcile_fincome(dataset, fincome)
    mo.vstack(
        [
            mo.md(
                f"Fincome holds {fincome.customers.height:,} customers, "
                f"{fincome.subscriptions.height:,} subscriptions and {fincome.invoices.height:,} "
                "invoices. Records held back by the audit are *missing* by design."
            ),
            mo.ui.table(
                versus_fincome.group_by("entity", "status").len("records").sort("entity", "status"),
                selection=None,
                show_download=False,
            ),
            mo.ui.table(versus_fincome, selection=None, page_size=10, label="Every finding"),
        ]
    )
    return (versus_fincome,)


if __name__ == "__main__":
    app.run()
