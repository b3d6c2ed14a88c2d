"""How every benchmark script ends: the results as JSON, one PASS/MISS line per target, exit 1 on a miss."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def report(results: dict[str, Any], checks: dict[str, bool], output: Path | None) -> int:
    """Print (and with `output`, write) `results` with the `checks` under "targets"; the process exit code."""
    results["targets"] = checks
    text = json.dumps(results, indent=2)
    print(text)
    if output:
        output.write_text(text + "\n")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'MISS'}  {name}")
    return 0 if all(checks.values()) else 1
