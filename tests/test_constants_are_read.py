"""Every module-level constant of ml, service, frontend and stacks is read somewhere (code, tests or docs): a
constant nothing reads (four lingered in stacks: bucket kinds, log prefixes, a chart's app version, scan
severities) misleads the reader about what the code depends on."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ml", "service", "frontend", "stacks")
READERS = ("ml", "service", "frontend", "stacks", "tests", "docs")


def _constants(path: Path) -> list[str]:
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        else:
            continue
        names += [t.id for t in targets if isinstance(t, ast.Name) and t.id.isupper() and not t.id.startswith("__")]
    return names


def test_every_constant_is_read() -> None:
    sources = [p for folder in READERS for p in (ROOT / folder).rglob("*") if p.suffix in {".py", ".md"}]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources if "_build" not in p.parts)
    mentions = Counter(re.findall(r"\b[A-Z_][A-Z0-9_]*\b", text))
    defined = {path: _constants(path) for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}
    # Each definition is one mention: two modules defining the same unread name must not pass for each other.
    definitions = Counter(name for names in defined.values() for name in names)
    unread = [
        f"{path.relative_to(ROOT)}: {name}"
        for path, names in defined.items()
        for name in names
        if mentions[name] <= definitions[name]
    ]
    assert not unread, unread
