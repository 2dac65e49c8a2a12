"""The public API: every exported name exists, is importable lazily, and is documented."""

import importlib
import inspect

import pytest

import fincome_toolkit

PUBLIC = [name for name in fincome_toolkit.__all__ if name != "__version__"]


def test_every_export_has_a_module():
    assert set(PUBLIC) == set(fincome_toolkit._EXPORTS)


@pytest.mark.parametrize("name", PUBLIC)
def test_export_resolves_and_is_documented(name):
    value = getattr(fincome_toolkit, name)
    module = importlib.import_module(fincome_toolkit._EXPORTS[name])
    assert getattr(module, name) is value
    if inspect.isclass(value) or inspect.isfunction(value):
        assert inspect.getdoc(value), f"{name} has no docstring"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError):
        fincome_toolkit.not_a_real_name  # noqa: B018


def test_importing_the_package_stays_light():
    """The CLI imports the package on every call: heavy libraries load only when used."""
    import subprocess
    import sys

    heavy = "('pandera', 'pandas', 'altair', 'great_tables')"
    code = f"import sys, fincome_toolkit; print([m for m in {heavy} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_submodule_import_does_not_hide_the_function_of_the_same_name():
    import fincome_toolkit.audit  # binds nothing over the public function

    assert callable(fincome_toolkit.audit)
    assert fincome_toolkit.audit.__module__ == "fincome_toolkit.audit"
