"""The `fincome-toolkit` command line: thin commands over the library."""

import click


@click.group()
@click.version_option(package_name="fincome-toolkit")
def main() -> None:
    """Load, audit, preview and upload billing data to Fincome."""
