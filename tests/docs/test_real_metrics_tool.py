"""The tool that regenerates docs/_data/real_metrics.json produces what the docs render, and refuses synthetic data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ml.training.behaviour import RISK_FACTORS
from tests.benchmarks import model_quality, real_metrics
from tests.docs.extensions import DOCS, project_tables

_SUBSTITUTION = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def _all_used_substitutions() -> set[str]:
    return {name for page in DOCS.rglob("*.md") for name in _SUBSTITUTION.findall(page.read_text(encoding="utf-8"))}


def _used_substitutions() -> set[str]:
    """The measured numbers the pages use (prices, `cost_...`, come from stacks/costs.py instead, and the counts and
    limits the code decides from the code)."""
    code = project_tables.code_substitutions()
    return {name for name in _all_used_substitutions() if not name.startswith("cost_") and name not in code}


def test_every_price_the_pages_use_comes_from_the_cost_model() -> None:
    used = {name for name in _all_used_substitutions() if name.startswith("cost_")}
    assert used
    assert used - set(project_tables.cost_substitutions()) == set()


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
    committed = project_tables.load_real_metrics()
    for section in ("split_spread", "alternatives"):  # measured by hand or by the benchmark: carried over
        assert regenerated[section] == committed[section]
    for name, scores in regenerated["per_class"].items():
        assert 0.5 < scores["roc_auc"] <= 1.0, name
    assert regenerated["precision_floor"]["with_floor"]["candidate"] == manifest["imbalance_strategy"]["chosen"]
    assert regenerated["ada_comparison"]["rows"] == regenerated["split"]["test_rows"]
    assert [b["feature"] for b in regenerated["behaviour"]] == list(RISK_FACTORS)
    tables = project_tables.real_tables(regenerated)
    assert {"real_ada.md", "real_behaviour.md", "real_precision_floor.md"} <= set(tables)


def test_the_screening_risk_auc_is_not_presented_as_a_finding_of_its_own(regenerated: dict) -> None:
    """p(pre-diabetes) + p(diabetes) = 1 - p(no diabetes) ranks exactly as the no-diabetes one-vs-rest AUC."""
    assert "elevated_risk_roc_auc" not in regenerated
    assert not {name for name in _used_substitutions() if "elevated" in name}
    assert regenerated["ada_comparison"]["prediabetes_or_diabetes"]["model_roc_auc"] == pytest.approx(
        regenerated["per_class"]["healthy"]["roc_auc"], abs=2e-4
    )


def _benchmark_report(seeds: dict[int, tuple[float, float, float]]) -> dict:
    """The shape `tests/benchmarks/model_quality.py --repeat-seeds ...` prints (only what --spread reads)."""
    names = ("weighted_f1", "macro_roc_auc", "log_loss")
    per_seed = {str(seed): dict(zip(names, values, strict=True)) for seed, values in seeds.items()}
    summary = {
        name: {
            "mean": sum(v[name] for v in per_seed.values()) / len(per_seed),
            "sd": 0.001,
            "min": min(v[name] for v in per_seed.values()),
            "max": max(v[name] for v in per_seed.values()),
        }
        for name in names
    }
    return {"other_splits": {"per_seed": per_seed, "summary": summary}}


def test_spread_section_comes_from_the_benchmark_report() -> None:
    report = _benchmark_report({7: (0.81, 0.77, 0.41), 9: (0.83, 0.79, 0.39)})
    spread = real_metrics.split_spread(report)
    assert list(spread["per_seed"]) == ["7", "9"]
    assert spread["command"].endswith("--repeat-seeds 7 9")
    assert spread["summary"]["macro_roc_auc"]["mean"] == pytest.approx(0.78)
    table = project_tables.real_tables({**project_tables.load_real_metrics(), "split_spread": spread})
    assert "0.7800 ± 0.0010" in table["real_split_spread.md"]


def test_no_regression_is_judged_on_paired_seeds_within_one_reference_sd() -> None:
    reference = _benchmark_report({1: (0.825, 0.788, 0.39), 2: (0.827, 0.790, 0.39), 3: (0.9, 0.9, 0.3)})
    reference = reference["other_splits"]  # the committed file's split_spread has this shape
    same = {"1": {"weighted_f1": 0.8245, "macro_roc_auc": 0.7875}, "2": {"weighted_f1": 0.8265, "macro_roc_auc": 0.79}}
    verdicts = model_quality.no_regression(same, reference)
    assert verdicts["seeds"] == ["1", "2"]  # seed 3 was not re-measured: it is not compared
    assert verdicts["weighted_f1"]["mean_paired_difference"] == pytest.approx(-0.0005)
    assert verdicts["weighted_f1"]["met"]
    assert verdicts["macro_roc_auc"]["met"]
    worse = {seed: {**figures, "macro_roc_auc": figures["macro_roc_auc"] - 0.002} for seed, figures in same.items()}
    assert not model_quality.no_regression(worse, reference)["macro_roc_auc"]["met"]
    table = project_tables.real_tables(
        {**project_tables.load_real_metrics(), "split_spread": {**reference, "no_regression": verdicts}}
    )
    assert "-0.0005 ± 0.0000" in table["real_no_regression.md"]


def test_spread_option_refuses_a_report_without_other_splits_before_measuring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "quality.json"
    report.write_text(json.dumps({"checks": {}}))
    output = tmp_path / "real_metrics.json"
    args = ["--data", str(tmp_path / "none.csv"), "--model", str(tmp_path / "none"), "--output", str(output)]
    with pytest.raises(SystemExit) as exit_info:  # data and model do not exist: nothing is measured first
        real_metrics.main([*args, "--spread", str(report)])
    assert exit_info.value.code == 2
    assert "--repeat-seeds" in capsys.readouterr().err
    assert not output.exists()


def test_synthetic_data_is_refused_by_default(trained_model_dir: Path, tmp_path: Path) -> None:
    data = trained_model_dir.parent / "synthetic.csv.gz"
    args = ["--data", str(data), "--model", str(trained_model_dir), "--output", str(tmp_path / "x.json")]
    with pytest.raises(SystemExit) as exit_info:
        real_metrics.main(args)
    assert exit_info.value.code == 2
    assert not (tmp_path / "x.json").exists()


def test_regenerated_file_has_the_screening_and_who_it_misses(regenerated: dict, trained_model_dir: Path) -> None:
    """Every figure the docs state about the screening comes from the model's manifest and its subgroup table."""
    manifest = json.loads((trained_model_dir / "manifest.json").read_text(encoding="utf-8"))
    screening = regenerated["screening"]
    assert screening["raised"] == round(manifest["screening"]["raised"], 4)
    assert screening["prediabetes_average"] == round(manifest["screening"]["prediabetes_average"], 4)
    assert screening["test_not_checked"]["ada_flagged"] == round(
        manifest["screening"]["test_not_checked"]["ada_flagged"], 4
    )
    assert {"Sex", "Age", "Income"} <= {g["feature"] for g in regenerated["screening_subgroups"]}
    assert "ADA risk test" in regenerated["screening_who_is_missed"]
    assert set(regenerated["prediabetes_probability"]) == {
        "top_tenth_predicted",
        "top_tenth_observed",
        "max",
        "top_tenth_share_of_prediabetes",
    }
    tables = project_tables.real_tables(regenerated)
    subgroups = tables["real_screening_subgroups.md"]
    assert "| Sensitivity: model | ADA test | Difference (points) |" in subgroups
    men = next(g for g in regenerated["screening_subgroups"] if g["group"] == "Male")
    assert f"{men['sensitivity_model']:.1%} ({100 * men['sensitivity_model_low']:.1f}-" in subgroups
    assert "Pre-diabetes, against neither" in tables["real_ada.md"]
    subs = project_tables.substitutions(regenerated)
    assert subs["real_screening_who_is_missed"] == regenerated["screening_who_is_missed"]
    assert subs["real_not_checked_flagged"] == f"{regenerated['screening']['test_not_checked']['flagged']:.1%}"


def test_access_option_refreshes_the_measured_options() -> None:
    figures = {
        "roc_auc": 0.82,
        "specificity_at_ada_sensitivity": 0.69,
        "lowered_by_one_access_answer": 0.0,
        "not_checked_flagged": 0.17,
        "not_checked_ada_flagged": 0.27,
    }
    per_seed = {"42": dict.fromkeys(project_tables.ACCESS_OPTIONS, figures)}
    summary = {o: {k: {"mean": v, "sd": 0.001} for k, v in figures.items()} for o in project_tables.ACCESS_OPTIONS}
    options = real_metrics.access_options({"command": "x --seeds 42", "per_seed": per_seed, "summary": summary})
    assert options["seeds"] == ["42"]
    table = project_tables.real_tables({**project_tables.load_real_metrics(), "access_options": options})
    assert (
        "| Access answers read as in care (**chosen**) | 0.8200 ± 0.0010 | 69.0% ± 0.1% | 0.0% | 17.0% (27.0%) |"
        in (table["real_access_options.md"])
    )
    with pytest.raises(ValueError, match="access_handling"):
        real_metrics.access_options({"checks": {}})
