import marimo

__generated_with = "0.25.2"
app = marimo.App(width="medium", app_title="Map and clean an export")


@app.cell(hide_code=True)
def _():
    from pathlib import Path

    import marimo as mo
    import polars as pl

    from fincome_toolkit.errors import ToolkitError
    from fincome_toolkit.frames import FIELDS, FRAME_NAMES, REQUIRED_FIELDS
    from fincome_toolkit.loading import (
        SUPPORTED_EXTENSIONS,
        find_frame_file,
        issue_summary,
        load_dataset,
        read_source,
    )
    from fincome_toolkit.mapping import (
        ColumnMapping,
        Constant,
        FrameMapping,
        resolve_columns,
    )

    return (
        ColumnMapping,
        Constant,
        FIELDS,
        FRAME_NAMES,
        FrameMapping,
        Path,
        SUPPORTED_EXTENSIONS,
        REQUIRED_FIELDS,
        ToolkitError,
        find_frame_file,
        issue_summary,
        load_dataset,
        mo,
        pl,
        read_source,
        resolve_columns,
    )


@app.cell(hide_code=True)
def _(mo):
    mo.md(r"""
    # Map and clean an export

    Exports never use Fincome's column names. This notebook tells the toolkit **which column
    of your files holds which field** (the *mapping*), reads the files with it, and shows every
    value it could not understand (a date like `31/02/2025`, an amount like `12,3,4`), with the
    file and line it comes from. Nothing is dropped: an unreadable value becomes empty in the
    clean data *and* a line in the parse issues below.

    **How to use it.** Give the folder of your export (by default the bundled sample). For each
    file, check the dropdowns: each Fincome field (left) takes one of your file's columns. They
    are pre-filled from the folder's `mapping.toml` when there is one, otherwise from columns
    whose name already matches. Fields marked **\*** are required. When the parse issues look
    right, save the mapping: the *audit*, *reconcile* and *upload* notebooks and the command
    line all read `mapping.toml` from the export folder.
    """)
    return


@app.cell(hide_code=True)
def _(mo):
    sample_dir = (mo.notebook_dir() / ".." / "sample_data").resolve()
    folder_input = mo.ui.text(
        value=mo.cli_args().get("data") or str(sample_dir), label="Export folder", full_width=True
    )
    folder_input
    return (folder_input,)


@app.cell(hide_code=True)
def _(ColumnMapping, Path, SUPPORTED_EXTENSIONS, ToolkitError, folder_input, mo):
    data_dir = Path(folder_input.value).expanduser()
    mo.stop(
        not data_dir.is_dir(),
        mo.callout(f"{data_dir} is not a folder: give the folder of your export.", kind="danger"),
    )
    mapping_file = data_dir / "mapping.toml"
    try:
        existing = ColumnMapping.from_toml(mapping_file) if mapping_file.is_file() else ColumnMapping()
    except ToolkitError as _error:
        mo.stop(True, mo.callout(mo.md(f"```\n{_error.message}\n```"), kind="danger"))
    data_files = sorted(
        p.name for p in data_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_EXTENSIONS
    )
    mo.md(
        f"Found {len(data_files)} data file(s) in `{data_dir}`; "
        + (
            f"mapping read from `{mapping_file.name}`."
            if mapping_file.is_file()
            else "no `mapping.toml` yet: columns are matched by name."
        )
    )
    return data_dir, data_files, existing, mapping_file


@app.cell(hide_code=True)
def _(FRAME_NAMES, ToolkitError, data_dir, data_files, existing, find_frame_file, mo):
    def _guess(frame):
        try:
            return find_frame_file(data_dir, frame, existing.for_frame(frame)).name
        except ToolkitError:
            return None

    file_pickers = mo.ui.dictionary(
        {
            frame: mo.ui.dropdown(
                options=data_files, value=_guess(frame), label=f"{frame} file", allow_select_none=True
            )
            for frame in FRAME_NAMES
        }
    )
    mo.vstack(
        [
            mo.md("## 1. Files\n\nWhich file holds each kind of record?"),
            mo.hstack(list(file_pickers.values()), justify="start", gap=2, wrap=True),
        ]
    )
    return (file_pickers,)


@app.cell(hide_code=True)
def _(FRAME_NAMES, ToolkitError, data_dir, existing, file_pickers, mo, read_source):
    raw_tables, raw_errors = {}, {}
    for _frame in FRAME_NAMES:
        _name = file_pickers.value.get(_frame)
        if not _name:
            continue
        try:
            _sheet = existing.for_frame(_frame).sheet
            raw_tables[_frame] = read_source(data_dir / _name, sheet=_sheet, frame=_frame)
        except ToolkitError as _error:
            raw_errors[_frame] = _error.message
    mo.stop(
        bool(raw_errors),
        mo.callout(
            mo.md("\n\n".join(f"**{f}**: {m}" for f, m in raw_errors.items())), kind="danger"
        ),
    )
    return (raw_tables,)


@app.cell(hide_code=True)
def _(Constant, FIELDS, REQUIRED_FIELDS, ToolkitError, existing, mo, raw_tables, resolve_columns):
    NOT_MAPPED = "(not mapped)"

    def _prefill(frame, columns):
        """Field → column from the mapping file, then from matching names."""
        try:
            resolved = resolve_columns(frame, columns, existing.for_frame(frame), file=frame)
            return dict(resolved.sources)
        except ToolkitError:  # e.g. a required field unmapped: keep what the mapping says
            return dict(existing.for_frame(frame).columns)

    def _options(columns, constant):
        extra = [f"= {constant.value!r} (constant)"] if constant is not None else []
        return [NOT_MAPPED, *extra, *columns]

    def _dropdown(frame, field, columns, chosen):
        constant = chosen if isinstance(chosen, Constant) else None
        value = (
            f"= {constant.value!r} (constant)"
            if constant is not None
            else chosen
            if chosen in columns
            else NOT_MAPPED
        )
        star = " *" if field in REQUIRED_FIELDS[frame] else ""
        return mo.ui.dropdown(
            options=_options(columns, constant), value=value, label=f"`{field}`{star}"
        )

    column_pickers = mo.ui.dictionary(
        {
            frame: mo.ui.dictionary(
                {
                    field: _dropdown(frame, field, raw.columns, _prefill(frame, raw.columns).get(field))
                    for field in FIELDS[frame]
                }
            )
            for frame, raw in raw_tables.items()
        }
    )
    return NOT_MAPPED, column_pickers


@app.cell(hide_code=True)
def _(column_pickers, mo, raw_tables):
    def _examples(raw, column):
        if column not in raw.columns:
            return ""
        values = raw.get_column(column).drop_nulls().unique(maintain_order=True).head(3)
        return ", ".join(f"`{v}`" for v in values.to_list())

    def _frame_panel(frame):
        raw = raw_tables[frame]
        rows = [
            mo.hstack(
                [picker, mo.md(_examples(raw, picker.value) or "&nbsp;")],
                justify="start",
                gap=2,
            )
            for picker in column_pickers[frame].values()
        ]
        unused = [c for c in raw.columns if c not in column_pickers[frame].value.values()]
        note = (
            f"Columns not used: {', '.join(f'`{c}`' for c in unused)} (kept in "
            "`custom_properties` when the mapping's `extra_columns` option says so)."
            if unused
            else "Every column of the file is used."
        )
        return mo.vstack(
            [
                mo.md(f"**{raw.height:,} rows.** Field ← column, with a few example values:"),
                *rows,
                mo.md(note),
                mo.accordion({"The first rows of the file": mo.ui.table(raw.head(20), selection=None)}),
            ]
        )

    mo.vstack(
        [
            mo.md("## 2. Columns"),
            mo.ui.tabs({frame: _frame_panel(frame) for frame in raw_tables}),
        ]
    )
    return


@app.cell(hide_code=True)
def _(
    ColumnMapping,
    FrameMapping,
    NOT_MAPPED,
    ToolkitError,
    column_pickers,
    data_dir,
    existing,
    file_pickers,
    find_frame_file,
):
    def _frame_mapping(frame, chosen):
        old = existing.for_frame(frame)
        columns = {f: c for f, c in chosen.items() if c and c != NOT_MAPPED and not c.startswith("= ")}
        constants = {
            f: v for f, v in old.constants.items() if str(chosen.get(f, "")).startswith("= ")
        }
        name = file_pickers.value.get(frame)
        try:
            default_name = find_frame_file(data_dir, frame, FrameMapping()).name
        except ToolkitError:  # no file found by its usual name: the mapping must name it
            default_name = None
        keep_file = old.file is not None or name != default_name  # name it when it must be
        return FrameMapping(
            file=name if keep_file else None,
            sheet=old.sheet,
            columns=columns,
            constants=constants,
        )

    mapping = ColumnMapping(
        frames={f: _frame_mapping(f, chosen) for f, chosen in column_pickers.value.items()},
        options=existing.options,
    )
    return (mapping,)


@app.cell(hide_code=True)
def _(ToolkitError, data_dir, load_dataset, mapping, mo, raw_tables):
    try:
        dataset = load_dataset(data_dir, mapping=mapping, frames=list(raw_tables))
    except ToolkitError as _error:
        _message = f"**The files cannot be read with this mapping.**\n\n```\n{_error.message}\n```"
        mo.stop(True, mo.callout(mo.md(_message), kind="danger"))
    mo.hstack(
        [
            *[
                mo.stat(f"{frame.height:,}", label=name, bordered=True)
                for name, frame in dataset.frames().items()
                if name in raw_tables
            ],
            mo.stat(
                f"{dataset.parse_issues.height:,}",
                label="values not understood",
                caption="listed below with file and line",
                bordered=True,
            ),
        ],
        justify="start",
    )
    return (dataset,)


@app.cell(hide_code=True)
def _(dataset, mo):
    frame_filter = mo.ui.dropdown(
        options=["every frame", *sorted(set(dataset.parse_issues["frame"].to_list()))],
        value="every frame",
        label="Frame",
    )
    column_filter = mo.ui.dropdown(
        options=["every column", *sorted(set(dataset.parse_issues["column"].to_list()))],
        value="every column",
        label="Column",
    )
    mo.vstack(
        [
            mo.md(
                "## 3. Values that could not be understood\n\nEach row is one value: where it "
                "is (file, line, record id, column), what it was, and why it was not understood. "
                "Fix them in the export, or adjust the mapping's options (date order, decimal "
                "comma, status spellings) and reload."
            ),
            mo.hstack([frame_filter, column_filter], justify="start", gap=2),
        ]
    )
    return column_filter, frame_filter


@app.cell(hide_code=True)
def _(column_filter, dataset, frame_filter, issue_summary, mo, pl):
    _issues = dataset.parse_issues
    if frame_filter.value != "every frame":
        _issues = _issues.filter(pl.col("frame") == frame_filter.value)
    if column_filter.value != "every column":
        _issues = _issues.filter(pl.col("column") == column_filter.value)
    mo.vstack(
        [
            mo.md("**Most frequent problems:**"),
            mo.ui.table(issue_summary(_issues, top=10), selection=None, show_download=False),
            mo.md(f"**{_issues.height:,} value(s):**"),
            mo.ui.table(_issues, selection=None, page_size=10, label="Parse issues"),
        ]
    )
    return


@app.cell(hide_code=True)
def _(dataset, mo):
    mo.vstack(
        [
            mo.md(
                "## 4. The clean data\n\nWhat Fincome will receive: Fincome's field names, "
                "real dates, exact amounts, known statuses. `source_file` and `source_line` say "
                "where each row comes from."
            ),
            mo.ui.tabs(
                {
                    name: mo.ui.table(frame, selection=None, page_size=10)
                    for name, frame in dataset.frames().items()
                },
                lazy=True,
            ),
        ]
    )
    return


@app.cell(hide_code=True)
def _(mapping, mapping_file, mo):
    toml_text = mapping.to_toml()
    save_button = mo.ui.run_button(label=f"Save as {mapping_file}", kind="success")
    mo.vstack(
        [
            mo.md(
                "## 5. Save the mapping\n\nKeep it next to the export as `mapping.toml` (the "
                "other notebooks and the command line read it from there), or download it."
            ),
            mo.md(f"```toml\n{toml_text}```"),
            mo.hstack(
                [
                    save_button,
                    mo.download(
                        toml_text.encode("utf-8"),
                        filename="mapping.toml",
                        mimetype="application/toml",
                        label="Download mapping.toml",
                    ),
                ],
                justify="start",
            ),
        ]
    )
    return save_button, toml_text


@app.cell(hide_code=True)
def _(mapping_file, mo, save_button, toml_text):
    mo.stop(not save_button.value)
    mapping_file.write_text(toml_text, encoding="utf-8")
    mo.callout(f"Saved {mapping_file}.", kind="success")
    return


if __name__ == "__main__":
    app.run()
