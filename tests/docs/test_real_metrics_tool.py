"""The tool that regenerates docs/_data/real_metrics.json produces what the docs render, and refuses synthetic data."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import project_tables  # noqa: E402
import real_metrics  # noqa: E402

_SUBSTITUTION = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _used_substitutions() -> set[str]:
    return {name for page in DOCS.rglob("*.md") for name in _SUBSTITUTION.findall(page.read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def regenerated(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    output = tmp_path_factory.mktemp("real-metrics") / "real_metrics.json"
    output.write_text((DOCS / "_data" / "real_metrics.json").read_text(encoding="utf-8"), encoding="utf-8")
    data = trained_model_dir.parent / "synthetic.csv.gz"
    args = ["--data", str(data), "--model", str(trained_model_dir), "--output", str(output), "--allow-synthetic"]
    assert real_metrics.main(args) == 0
    return json.loads(output.read_text(encoding="utf-8"))


def test_committed_file_provides_every_substitution_the_pages_use() -> None:
    missing = _used_substitutions() - set(project_tables.substitutions(project_tables.load_real_metrics()))
    assert not missing, f"pages use substitutions that real_metrics.json does not provide: {sorted(missing)}"


def test_regenerated_file_provides_every_substitution_and_table(regenerated: dict) -> None:
    missing = _used_substitutions() - set(project_tables.substitutions(regenerated))
    assert not missing, sorted(missing)
    tables = project_tables.real_tables(regenerated)
    assert {"real_overall.md", "real_strategies.md", "real_subgroups.md"} <= set(tables)


def test_regenerated_file_matches_the_model(regenerated: dict, trained_model_dir: Path) -> None:
    manifest = json.loads((trained_model_dir / "manifest.json").read_text(encoding="utf-8"))
    assert regenerated["test"]["weighted_f1"] == round(manifest["metrics"]["test"]["weighted_f1"], 4)
    assert regenerated["split"]["split_id"] == manifest["split"]["test"]["split_id"]
    keys = [s["key"] for s in regenerated["strategies"]]
    assert keys[:3] == ["majority", "logreg_argmax", "logreg_tuned"]
    assert sum(1 for s in regenerated["strategies"] if s.get("chosen")) == 1
    assert "balanced" in keys  # the hand-measured row is carried over
    assert len(regenerated["subgroups"]) >= 6


def test_synthetic_data_is_refused_by_default(trained_model_dir: Path, tmp_path: Path) -> None:
    data = trained_model_dir.parent / "synthetic.csv.gz"
    args = ["--data", str(data), "--model", str(trained_model_dir), "--output", str(tmp_path / "x.json")]
    with pytest.raises(SystemExit) as exit_info:
        real_metrics.main(args)
    assert exit_info.value.code == 2
    assert not (tmp_path / "x.json").exists()
