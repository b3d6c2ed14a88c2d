"""Pulumi entry point (Pulumi.yaml `main: stacks/`): read the stack's settings once and build it."""

import sys
from pathlib import Path

# Pulumi runs this file with stacks/ as the working directory; the project root must be importable.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from stacks.config import load_settings  # noqa: E402
from stacks.program import build  # noqa: E402

build(load_settings())
