"""The README is read on GitHub, where no ``{{ real_... }}`` substitution renders, so its figures are written by hand:
each must be the one `docs/_data/real_metrics.json` (or the code) holds, or a change leaves the README behind."""

from __future__ import annotations

from tests.docs.extensions import ROOT, project_tables


def _expected_phrases() -> list[str]:
    data = project_tables.load_real_metrics()
    subs = project_tables.substitutions(data)
    shares = " / ".join(f"{count / data['data']['rows']:.0%}" for count in data["data"]["class_counts"].values())
    per_class = data["per_class"].values()
    classwise = " / ".join(f"{s['ece']:.4f}" for s in per_class)
    recall = " / ".join(f"{s['recall']:.3f}" for s in per_class)
    return [
        f"{subs['real_rows']} rows, {shares}",
        f"the real file has {subs['real_dup_exact']} exact duplicates and {subs['real_dup_feature_vector']} rows",
        f"promotion holdout of {subs['real_holdout_rows']} rows",
        f"seed {subs['real_seed']}, {subs['real_test_rows']} test rows",
        f"weighted F1 {subs['real_weighted_f1']}, macro F1 {subs['real_macro_f1']}, macro one-vs-rest ROC-AUC "
        f"{subs['real_macro_roc_auc']}, log loss {subs['real_log_loss']}, ECE {subs['real_ece']} "
        f"(classwise {classwise})",
        f"recall {recall} (no diabetes / pre-diabetes / diabetes)",
        f"sensitivity ({subs['real_ada_prediabetes_or_diabetes_ada_sensitivity']} of people with pre-diabetes",
        f"specificity {subs['real_ada_prediabetes_or_diabetes_model_specificity']} against "
        f"{subs['real_ada_prediabetes_or_diabetes_ada_specificity']}",
        f"Over {subs['real_spread_splits']} other splits",
        f"weighted F1 {subs['real_spread_weighted_f1_mean']} ± {subs['real_spread_weighted_f1_sd']} and macro ROC-AUC "
        f"{subs['real_spread_macro_roc_auc_mean']} ± {subs['real_spread_macro_roc_auc_sd']}",
        f"a mean paired change of {data['split_spread']['no_regression']['weighted_f1']['mean_paired_difference']:+.4f}"
        f" and {data['split_spread']['no_regression']['macro_roc_auc']['mean_paired_difference']:+.4f}",
    ]


def test_the_readmes_shares_and_limits_are_the_codes() -> None:
    """The split's shares and the precision floor's evidence, which the docs take from the code."""
    code = project_tables.code_substitutions()
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    phrases = [
        f"test split ({code['test_share']})",
        f"promotion holdout ({code['holdout_share']} of the distinct feature vectors",
        f"a {code['validation_share']} validation fold",
        f"named at least {code['floor_min_named']} times on the validation fold",
        f"lower {code['floor_confidence']} bound",
    ]
    missing = [phrase for phrase in phrases if phrase not in readme]
    assert not missing, "README.md no longer says what the code does:\n" + "\n".join(missing)


def test_the_readmes_measured_figures_are_the_files() -> None:
    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    missing = [phrase for phrase in _expected_phrases() if phrase not in readme]
    assert not missing, "README.md no longer quotes docs/_data/real_metrics.json:\n" + "\n".join(missing)
