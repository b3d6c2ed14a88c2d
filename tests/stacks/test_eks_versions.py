"""The EKS version the dev stack runs is in standard support, and a preview warns 90 days before it ends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from unittest import mock

import pytest
import yaml

from stacks.config import EksStackSettings
from stacks.eks.versions import STANDARD_SUPPORT_END, WARN_DAYS, support_warning
from tests.stacks.harness import Run, run_program, settings_for

ROOT = Path(__file__).resolve().parents[2]
#: The day this version choice was checked; the test keeps the promise of the issue that fixed it.
REVIEWED = dt.date(2026, 12, 6)


def test_the_dev_stack_runs_a_version_in_standard_support() -> None:
    """1.33 left standard support on 2026-07-29: every hour billed extended support ($0.60 instead of $0.10)."""
    stack = yaml.safe_load((ROOT / "stacks" / "eks" / "Pulumi.dev.yaml").read_text())
    version = stack["config"]["diabetes-eks:eks"]["version"]
    assert STANDARD_SUPPORT_END[version] > REVIEWED
    assert support_warning(version, REVIEWED) is None
    assert settings_for(EksStackSettings).eks.version == version, "the default and the dev stack agree"


@pytest.mark.parametrize(
    ("version", "today", "fragment"),
    [
        ("1.35", STANDARD_SUPPORT_END["1.35"] - dt.timedelta(days=WARN_DAYS), "ends on 2027-03-27 (90 days)"),
        ("1.35", STANDARD_SUPPORT_END["1.35"], "ends on 2027-03-27 (0 days)"),
        ("1.33", REVIEWED, "ended on 2026-07-29"),
    ],
)
def test_the_warning_names_the_date_and_the_way_out(version: str, today: dt.date, fragment: str) -> None:
    warning = support_warning(version, today)
    assert warning is not None
    assert fragment in warning
    assert "diabetes-eks:eks.version" in warning


def test_no_warning_while_more_than_90_days_are_left() -> None:
    assert support_warning("1.35", STANDARD_SUPPORT_END["1.35"] - dt.timedelta(days=WARN_DAYS + 1)) is None


def test_a_preview_on_a_version_near_its_end_warns(root_run: Run) -> None:
    from stacks.eks.program import build

    with mock.patch("pulumi.log.warn") as warn, mock.patch("stacks.eks.versions.today", return_value=REVIEWED):
        settings = settings_for(EksStackSettings, eks={"version": "1.34", "allowExtendedSupport": True})
        run_program(build, settings, root_run.outputs, preview=True)
    messages = [call.args[0] for call in warn.call_args_list]
    assert any("EKS 1.34 standard support ended on 2026-12-02" in m for m in messages), messages


@pytest.mark.parametrize("version", ["1.32", "1.33", "1.34"])
def test_a_version_past_standard_support_is_refused_unless_allowed(version: str) -> None:
    """1.32-1.34 bill extended support on the review date and were accepted without an error."""
    from stacks.config import ConfigError

    with mock.patch("stacks.eks.versions.today", return_value=REVIEWED):
        with pytest.raises(ConfigError, match=f"EKS {version} is past its standard support"):
            settings_for(EksStackSettings, eks={"version": version})
        assert settings_for(EksStackSettings, eks={"version": version, "allowExtendedSupport": True})


def test_the_advice_names_the_next_version_not_the_current_one() -> None:
    """The warning said "newest: 1.35" to a stack on 1.35; it names the next step, or that its row is missing."""
    assert "set diabetes-eks:eks.version to 1.35" in (support_warning("1.34", REVIEWED) or "")
    newest = support_warning("1.35", STANDARD_SUPPORT_END["1.35"]) or ""
    assert "add 1.36 to stacks/eks/versions.py" in newest
