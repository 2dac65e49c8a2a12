"""One error tree with messages meant for analysts: what is wrong, where, and how to fix it.

The CLI turns these into a message and an exit code; nothing here ever carries a secret key.
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base of every error the toolkit raises on purpose. `exit_code` is what the CLI returns."""

    exit_code = 2

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """The full analyst-facing text: where, what, and the fix when one is known."""
        text = f"{self.where}: {self.what}" if self.where else self.what
        return f"{text}\n  how to fix: {self.fix}" if self.fix else text


class InputError(ToolkitError):
    """An input file or mapping cannot be used (missing, unreadable, empty, wrong columns...)."""


class ConfigError(ToolkitError):
    """A setting is missing or wrong (no API key, bad URL, bad option value)."""


class ApiError(ToolkitError):
    """The API answered in a way that stops the whole run (wrong key, unreachable server)."""
