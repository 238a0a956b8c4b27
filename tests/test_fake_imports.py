"""The fake CometChat imports nothing from the tool, so the two cannot share a mistake."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import bulkdelete.fake

PACKAGE = Path(bulkdelete.fake.__file__).parent
ROOT = PACKAGE.parent.parent  # the directory that holds the bulkdelete package
MODULES = sorted(PACKAGE.rglob("*.py"))


def tool_imports(source: str, package: str) -> list[str]:
    """Return what ``source``, a module of ``package``, imports from bulkdelete outside the fake.

    ``from X import a`` counts as importing ``X.a`` (``a`` may be a module), and relative imports
    are resolved against ``package``, so no spelling of an import slips past.
    """
    imported: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            imported += [f"{module}.{alias.name}" for alias in node.names]
    return [
        name
        for name in imported
        if name.split(".")[0] == "bulkdelete" and name.split(".")[:2] != ["bulkdelete", "fake"]
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from bulkdelete.fake.window import RateWindow", []),
        ("from . import answers\nfrom .window import ServerClock", []),
        ("import aiohttp.web\nfrom aiohttp import web", []),
        ("import bulkdelete", ["bulkdelete"]),
        ("import bulkdelete.outcome", ["bulkdelete.outcome"]),
        ("from bulkdelete import outcome", ["bulkdelete.outcome"]),
        ("from bulkdelete.api import rate_info", ["bulkdelete.api.rate_info"]),
        ("from .. import records", ["bulkdelete.records"]),
        ("from ..errors import UsageError", ["bulkdelete.errors.UsageError"]),
        ("def f():\n    from bulkdelete.run import run_delete", ["bulkdelete.run.run_delete"]),
    ],
)
def test_tool_imports_finds_every_spelling(source: str, expected: list[str]) -> None:
    """The check names an import of the tool however it is written, and nothing else."""
    assert tool_imports(source, "bulkdelete.fake") == expected


def test_the_fake_is_a_package_of_modules() -> None:
    """The fake is the package bulkdelete/fake/, so the check below has modules to read."""
    assert PACKAGE / "__init__.py" in MODULES
    assert len(MODULES) > 1


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.relative_to(PACKAGE).as_posix())
def test_fake_module_imports_nothing_from_the_tool(path: Path) -> None:
    """No module of bulkdelete/fake/ imports a bulkdelete module outside the package."""
    package = ".".join(path.relative_to(ROOT).parent.parts)
    assert tool_imports(path.read_text(encoding="utf-8"), package) == []
