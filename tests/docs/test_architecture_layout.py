"""The architecture page's layout names every module of ml, service and frontend: a new module is described where
a newcomer looks first (http_protocol.py, operator.py, docs.py and about.py were missing)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
FOLDERS = ("ml", "service", "frontend")


def _layout() -> str:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## The layout", 1)[1]
    block = re.search(r"```text\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the layout's ```text block is missing"
    return block.group(1)


def test_the_layout_names_every_module() -> None:
    layout = _layout()
    named = set(re.findall(r"[A-Za-z_]\w*\.py", layout))
    modules = {path.name for folder in FOLDERS for path in (ROOT / folder).rglob("*.py") if path.name != "__init__.py"}
    assert modules - named == set()
    assert named - modules == set()  # nothing described that is gone
