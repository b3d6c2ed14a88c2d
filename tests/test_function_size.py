"""No function of the project's code is longer than 80 lines: a longer one does several things (the Pulumi
constructors of 106 to 136 lines, `train` and the docs' `real_tables` were split by what each does)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("ml", "service", "frontend", "stacks", "docs/_ext", "tests/benchmarks")
MAX_LINES = 80


def test_no_function_is_longer_than_80_lines() -> None:
    long = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (node.end_lineno or node.lineno) - node.lineno + 1
                    if lines > MAX_LINES:
                        long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, long
