"""fincome_toolkit: load, validate, preview and upload billing data to Fincome."""

__version__ = "0.1.0"
