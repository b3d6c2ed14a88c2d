"""Policy pack entry point: serves the project's mandatory rules to the Pulumi engine."""

import sys
from pathlib import Path

# The engine runs this file with stacks/policy/ as the working directory; make the project root importable.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from pulumi_policy import PolicyPack  # noqa: E402

from stacks.policy.rules import policies  # noqa: E402

PolicyPack(name="diabetes-guardrails", policies=policies())
