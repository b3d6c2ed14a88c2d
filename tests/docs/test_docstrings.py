"""One docstring markup everywhere: Markdown-style single-backtick code spans (Sphinx's default role is `code`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ml", "service", "frontend", "stacks")


def _docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            text = ast.get_docstring(node, clean=False)
            if text:
                found.append((getattr(node, "lineno", 1), text))
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_docstrings_use_single_backtick_code_spans(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, text in _docstrings(path)
        if "``" in text
    ]
    assert not offenders, f"reStructuredText double-backtick literals in docstrings: {offenders}"
