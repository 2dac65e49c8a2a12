import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Upload to Fincome")


@app.cell(hide_code=True)
def _():
    import json
    import os
    import socket
    import tempfile
    from contextlib import nullcontext as contextlib_nullcontext
    from pathlib import Path

    import marimo as mo
    import polars as pl

    from fincome_toolkit.audit import audit
    from fincome_toolkit.client import FincomeClient, pull
    from fincome_toolkit.contract import ContractSettings
    from fincome_toolkit.errors import ToolkitError
    from fincome_toolkit.fixes import apply_fixes
    from fincome_toolkit.journal import Journal, default_journal_path
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.reconcile import reconcile_fincome
    from fincome_toolkit.sample import AS_OF
    from fincome_toolkit.sandbox import DEFAULT_API_KEY, sandbox
    from fincome_toolkit.upload import upload
    from fincome_toolkit.upload_plan import dry_run
    from fincome_toolkit.upload_progress import MarimoProgress

    return (
        AS_OF,
        ContractSettings,
        DEFAULT_API_KEY,
        FincomeClient,
        Journal,
        MarimoProgress,
        Path,
        ToolkitError,
        apply_fixes,
        audit,
        contextlib_nullcontext,
        default_journal_path,
        dry_run,
        json,
        load_dataset,
        mo,
        os,
        pl,
        pull,
        reconcile_fincome,
        sandbox,
        socket,
        tempfile,
        upload,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Upload an export to Fincome

    This notebook sends customers, subscriptions and invoices to Fincome's API, safely:

    1. **choose the target**: a local *sandbox* that behaves like Fincome (the default: nothing
       leaves your machine), or the real API with your secret key;
    2. **preview** (dry run): what would be sent, skipped or held back, and the exact JSON;
    3. **send**: records go in dependency order (customers, subscriptions, invoices), with
       retries; records with audit errors are **held back** with their reason;
    4. **resume**: run it again and only what is missing is sent (here: nothing). Every record's
       state is kept in a journal, so a crash or a closed laptop never duplicates anything.

    Your secret key is read from the environment variable `FINCOME_API_KEY` and is never shown,
    logged or written anywhere.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    sample_dir = (mo.notebook_dir() / ".." / "sample_data").resolve()
    folder_input = mo.ui.text(
        value=mo.cli_args().get("data") or str(sample_dir), label="Export folder", full_width=True
    )
    fixes_switch = mo.ui.switch(value=True, label="apply the safe fixes before sending")
    mo.vstack([folder_input, fixes_switch])
    return fixes_switch, folder_input, sample_dir


@app.cell(hide_code=True)
def _(
    AS_OF,
    Path,
    ToolkitError,
    apply_fixes,
    audit,
    fixes_switch,
    folder_input,
    load_dataset,
    mo,
    sample_dir,
):
    data_dir = Path(folder_input.value).expanduser()
    _mapping = data_dir / "mapping.toml"
    try:
        _loaded = load_dataset(data_dir, mapping=_mapping if _mapping.is_file() else None)
    except ToolkitError as _error:
        mo.stop(True, mo.callout(mo.md(f"```\n{_error.message}\n```"), kind="danger"))
    dataset = apply_fixes(_loaded).dataset if fixes_switch.value else _loaded
    checked = audit(dataset, as_of=AS_OF if data_dir.resolve() == sample_dir else None)
    _blocked = checked.blocked_records().height
    mo.md(
        f"Loaded **{dataset.customers.height:,} customers, {dataset.subscriptions.height:,} "
        f"subscriptions and {dataset.invoices.height:,} invoices**. The audit verdict is "
        f"**{checked.verdict.upper()}**: {_blocked:,} record(s) carry an error and will be held "
        "back (open the *audit* notebook to see why)."
    )
    return checked, data_dir, dataset


@app.cell(hide_code=True)
def _(ContractSettings, mo):
    _target = mo.cli_args().get("target") or "sandbox"
    target_picker = mo.ui.radio(
        options={
            "Local sandbox (safe: nothing leaves this machine)": "sandbox",
            "Fincome API (your real account)": "fincome",
        },
        value="Fincome API (your real account)"
        if _target == "fincome"
        else "Local sandbox (safe: nothing leaves this machine)",
        label="**Target**",
    )
    base_url_input = mo.ui.text(
        value=mo.cli_args().get("base-url") or ContractSettings().base_url,
        label="Fincome API URL",
        full_width=True,
    )
    faults_switch = mo.ui.switch(
        value=True, label="sandbox: simulate a flaky API (errors, lost answers, rate limit)"
    )
    return base_url_input, faults_switch, target_picker


@app.cell(hide_code=True)
def _(base_url_input, faults_switch, mo, target_picker):
    mo.vstack(
        [
            mo.md("## 1. Target"),
            target_picker,
            faults_switch if target_picker.value == "sandbox" else base_url_input,
        ]
    )
    return


@app.cell(hide_code=True)
def _(
    ContractSettings,
    DEFAULT_API_KEY,
    Path,
    base_url_input,
    data_dir,
    default_journal_path,
    faults_switch,
    mo,
    os,
    socket,
    target_picker,
    tempfile,
):
    use_sandbox = target_picker.value == "sandbox"
    if use_sandbox:
        # One port and one folder for this session, so the journal always meets the same target
        # and the sandbox keeps its data (SQLite) between the upload and the resumed run.
        with socket.socket() as _probe:
            _probe.bind(("127.0.0.1", 0))
            sandbox_port = _probe.getsockname()[1]
        work_dir = Path(tempfile.mkdtemp(prefix="fincome-upload-"))
        target = ContractSettings(base_url=f"http://127.0.0.1:{sandbox_port}")
        api_key = DEFAULT_API_KEY  # the sandbox's public test key
        sandbox_options = {
            "db": work_dir / "sandbox.sqlite",
            "port": sandbox_port,
            **(
                {"fail_rate": 0.1, "drop_rate": 0.05, "rate_limit": 300.0, "seed": 1}
                if faults_switch.value
                else {}
            ),
        }
        journal_path = work_dir / "journal.sqlite"
        _about = (
            f"a local sandbox at `{target.base_url}`"
            + (" with faults on" if faults_switch.value else "")
            + f"; its data and the journal are in `{work_dir}`."
        )
    else:
        target = ContractSettings(base_url=base_url_input.value.strip())
        api_key = os.environ.get(target.api_key_env) or None
        sandbox_options = None
        work_dir = data_dir / ".fincome"
        journal_path = default_journal_path(target.base_url, directory=work_dir)
        _about = (
            f"Fincome at `{target.base_url}`; the key is "
            + (
                f"set in `{target.api_key_env}` (hidden)."
                if api_key
                else f"**missing**: set `{target.api_key_env}` before starting marimo."
            )
            + f" The journal is `{journal_path}`."
        )
    mo.callout(mo.md(f"Sending to {_about}"), kind="info" if api_key else "danger")
    return api_key, journal_path, sandbox_options, target, use_sandbox, work_dir


@app.cell(hide_code=True)
def _(Journal, checked, dataset, dry_run, journal_path, mo, pl, target, work_dir):
    with Journal(journal_path, base_url=target.base_url) as _journal:
        plan = dry_run(dataset, work_dir / "dry_run", audit=checked, journal=_journal)
    held_back = plan.to_frame().filter(pl.col("action") == "held_back").select(
        "entity", "record_id", "reason", "source_file", "source_line"
    )
    mo.vstack(
        [
            mo.md(
                "## 2. Preview (dry run)\n\nNothing is sent yet. *send*: new or changed; *skip*: "
                "Fincome already holds this exact content; *held_back*: not sent, see the reason."
            ),
            plan,
            mo.md(f"**{held_back.height:,} record(s) held back**, with the reason:"),
            mo.ui.table(held_back, selection=None, page_size=8),
        ]
    )
    return (plan,)


@app.cell(hide_code=True)
def _(json, mo, plan):
    _to_send = plan.to_send()
    _examples = {}
    for _entity in ("customers", "subscriptions", "invoices"):
        _rows = _to_send.filter(_to_send["entity"] == _entity)
        if _rows.height:
            _payload = plan.payload(_entity, _rows["row"][0])
            _examples[_entity] = mo.md(f"```json\n{json.dumps(_payload, indent=2)}\n```")
    mo.accordion({f"The JSON of the first {e[:-1]} to send": v for e, v in _examples.items()})
    return


@app.cell(hide_code=True)
def _(mo, target):
    send_button = mo.ui.run_button(label=f"Send to {target.base_url}", kind="success")
    mo.vstack([mo.md("## 3. Send"), send_button])
    return (send_button,)


@app.cell(hide_code=True)
def _(
    FincomeClient,
    Journal,
    MarimoProgress,
    contextlib_nullcontext,
    mo,
    sandbox,
    sandbox_options,
    upload,
    use_sandbox,
):
    # Running as a script (`python notebooks/upload.py`) presses the buttons: it sends.
    auto_run = mo.app_meta().mode == "script"

    async def send(dataset, checked, *, target, api_key, journal_path, title):
        """Upload through a sandbox (started for the run) or to Fincome; returns the result."""
        serving = sandbox(**sandbox_options) if use_sandbox else contextlib_nullcontext()
        with serving, Journal(journal_path, base_url=target.base_url) as journal:
            async with FincomeClient(target, api_key=api_key) as client:
                with MarimoProgress(title=title) as bar:
                    return await upload(
                        dataset, client=client, journal=journal, audit=checked, progress=bar
                    )

    return auto_run, send


@app.cell(hide_code=True)
async def _(
    api_key,
    auto_run,
    checked,
    dataset,
    journal_path,
    mo,
    send,
    send_button,
    target,
):
    mo.stop(not (send_button.value or auto_run), mo.md("*Press the button to send.*"))
    mo.stop(api_key is None, mo.callout("No API key: nothing was sent.", kind="danger"))
    result = await send(
        dataset,
        checked,
        target=target,
        api_key=api_key,
        journal_path=journal_path,
        title="Uploading",
    )
    mo.vstack(
        [
            mo.md(
                f"**{result.count('acknowledged'):,} record(s) acknowledged** in "
                f"{result.requests:,} requests ({result.seconds:.1f} s). Held-back and rejected "
                "records are listed with the reason; fix them in your export and run again."
            ),
            result,
            mo.ui.table(result.problems(), selection=None, page_size=10, label="Records to look at"),
            mo.download(
                lambda: result.records.write_csv().encode("utf-8"),
                filename="upload_results.csv",
                mimetype="text/csv",
                label="Outcome of every record (CSV)",
            ),
        ]
    )
    return (result,)


@app.cell(hide_code=True)
def _(mo, result):
    resume_button = mo.ui.run_button(label="Run again (resume)")
    mo.vstack(
        [
            mo.md(
                "## 4. Resume\n\nRunning again sends only what Fincome does not hold yet: "
                f"after this upload ({result.count('acknowledged'):,} acknowledged), nothing."
            ),
            resume_button,
        ]
    )
    return (resume_button,)


@app.cell(hide_code=True)
async def _(
    api_key,
    auto_run,
    checked,
    dataset,
    journal_path,
    mo,
    resume_button,
    send,
    target,
):
    mo.stop(not (resume_button.value or auto_run), mo.md("*Press the button to resume.*"))
    resumed = await send(
        dataset,
        checked,
        target=target,
        api_key=api_key,
        journal_path=journal_path,
        title="Resuming",
    )
    mo.vstack(
        [
            mo.md(
                f"The resumed run made **{resumed.requests} request(s)**: "
                f"{resumed.count('skipped'):,} records were already in Fincome, "
                f"{resumed.count('acknowledged'):,} were sent now."
            ),
            resumed,
        ]
    )
    return (resumed,)


@app.cell(hide_code=True)
async def _(
    FincomeClient,
    api_key,
    contextlib_nullcontext,
    dataset,
    mo,
    pull,
    reconcile_fincome,
    resumed,
    sandbox,
    sandbox_options,
    target,
    use_sandbox,
):
    # Read back once both runs are done (this cell depends on `resumed`).
    _runs = 2 if resumed is not None else 1
    _serving = sandbox(**sandbox_options) if use_sandbox else contextlib_nullcontext()
    with _serving:
        async with FincomeClient(target, api_key=api_key) as _client:
            fincome = await pull(_client)
    _compared = reconcile_fincome(dataset, fincome)
    mo.vstack(
        [
            mo.md(
                f"## 5. What Fincome holds now\n\nRead back after {_runs} runs and compared with "
                "the export, field by field. Records held back or rejected are *missing* by design."
            ),
            mo.ui.table(
                _compared.group_by("entity", "status").len("records").sort("entity", "status"),
                selection=None,
                show_download=False,
            ),
            mo.ui.table(_compared, selection=None, page_size=8, label="Every difference"),
        ]
    )
    return


if __name__ == "__main__":
    app.run()
