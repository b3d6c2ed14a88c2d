"""Docs generated from the code at every build, so they cannot drift from it.

- ``_generated/features.md``, ``classes.md``, ``subgroups.md``: tables from :mod:`ml.schema`.
- ``_generated/real_*.md`` and the ``{{ name }}`` substitutions: the numbers measured on the real file, kept in
  one place, ``docs/_data/real_metrics.json``.
- ``_generated/costs.md`` and the ``{{ cost_... }}`` substitutions: the monthly cost of every profile and the unit
  prices with their sources, from the one cost model, :mod:`stacks.costs`.
- ``api/packages.rst``: one autosummary entry per module of ml, service, frontend and stacks found on disk
  (entry scripts are skipped: importing them would run a Pulumi program or the Streamlit page).
"""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sphinx.application import Sphinx
from sphinx.config import Config

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"
REAL_METRICS = DOCS / "_data" / "real_metrics.json"
API_PAGE = DOCS / "api" / "packages.rst"
#: Top-level packages documented in the API reference (those present on disk).
PACKAGES = ("ml", "service", "frontend", "stacks")
#: Scripts that run an app when imported (besides ``__main__`` modules); their logic lives in documented modules.
ENTRY_SCRIPTS = frozenset({"frontend.app"})
#: Generated file -> the pydantic-settings class it documents (written when the module exists).
SETTINGS = {"service_settings.md": "service.settings:Settings", "ui_settings.md": "frontend.settings:Settings"}
#: Figures of the split-spread table (keys of the benchmark's per-seed figures), in order, with their label.
SPREAD_ROWS = {
    "weighted_f1": "Weighted F1",
    "macro_roc_auc": "Macro one-vs-rest ROC-AUC",
    "log_loss": "Log loss",
    "ece_prediabetic": "Classwise ECE of p(pre-diabetes)",
    "ece_diabetic": "Classwise ECE of p(diabetes)",
    "named_prediabetic": "People named pre-diabetic",
    "named_prediabetic_without_floor": "... without the precision floor",
    "precision_prediabetic_without_floor": "... their precision",
    "ada_prediabetes_or_diabetes_model_specificity": "Specificity at the ADA test's sensitivity (pre-diabetes or diabetes)",
    "ada_prediabetes_or_diabetes_ada_specificity": "... the ADA test's own specificity",
}
#: The targets of the ADA comparison, with their label and the model's score in the tables.
ADA_TARGETS = {
    "prediabetes_or_diabetes": ("Pre-diabetes or diabetes", "p(pre-diabetes) + p(diabetes)"),
    "diabetes": ("Diabetes", "p(diabetes)"),
    "prediabetes": ("Pre-diabetes, against neither (rows with diabetes left out)", "p(pre-diabetes)"),
}
#: Screening figures of the benchmark's split spread, in order, with their label: the model's, then the ADA test's.
SCREENING_SPREAD_ROWS = {
    "screening_raised": "'raised' starts at (risk)",
    "screening_raised_not_checked": "... for people not checked in 5 years",
    "screening_test_sensitivity": "Sensitivity of 'raised' (pre-diabetes or diabetes)",
    "screening_test_ada_sensitivity": "... the ADA test's",
    "screening_test_sensitivity_prediabetes": "Sensitivity of 'raised' for pre-diabetes",
    "screening_test_ada_sensitivity_prediabetes": "... the ADA test's",
    "screening_test_specificity": "Specificity of 'raised'",
    "screening_test_ada_specificity": "... the ADA test's",
    "screening_not_checked_flagged": "People not checked in 5 years given 'raised' or 'high'",
    "screening_not_checked_ada_flagged": "... flagged by the ADA test",
    "screening_roc_auc_as_given": "ROC-AUC of the risk, answers as given",
    "screening_roc_auc_in_care": "... access answers read as in care (served)",
    "screening_specificity_at_ada_sensitivity_as_given": "Specificity at the ADA test's sensitivity, answers as given",
    "screening_specificity_at_ada_sensitivity_in_care": "... access answers read as in care (served)",
}
#: The access-handling options measured by `tests/benchmarks/access_handling.py`, with their label.
ACCESS_OPTIONS = {
    "as_given": "Answers as given (before)",
    "in_care": "Access answers read as in care (**chosen**)",
    "max_in_care": "Largest risk over answers at least as in care",
    "left_out": "Access answers left out of the model",
    "monotone": "Binary model, monotone in the access answers",
}
_PACKAGE_TITLES = {
    "ml": "ml: data, training, evaluation, artifact, inference, tracking",
    "service": "service: the FastAPI prediction service",
    "frontend": "frontend: the Streamlit app",
    "stacks": "stacks: the Pulumi program and operations CLI",
}


# ------------------------------------------------------------------------------------------------ helpers


def _write(path: Path, text: str) -> None:
    """Write only on change, so Sphinx's incremental build does not see every page as outdated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ schema tables


def features_table() -> str:
    from ml.schema import FEATURES

    rows = [(f"`{f.name}`", f.description, f.kind.value, f.allowed_values(), f.label(f.default)) for f in FEATURES]
    return markdown_table(("Column", "Meaning", "Kind", "Values", "Form default"), rows)


def questions_table() -> str:
    from ml.schema import FEATURES

    return markdown_table(("Column", "Question asked in the UI"), ((f"`{f.name}`", f.question) for f in FEATURES))


def classes_table() -> str:
    from ml.schema import CLASSES, TARGET

    rows = ((f"`{TARGET}` = {c.id}", f"`{c.name}`", c.label, c.description) for c in CLASSES)
    return markdown_table(("Value", "API name", "Label", "Meaning"), rows)


def subgroups_table() -> str:
    from ml.schema import FEATURES_BY_NAME, SUBGROUP_BANDS

    rows = []
    for column, bands in SUBGROUP_BANDS.items():
        spec = FEATURES_BY_NAME[column]
        for band, values in bands.items():
            rows.append((f"`{column}`", band, ", ".join(f"{v} ({spec.label(v)})" for v in values)))
    return markdown_table(("Feature", "Band", "Codes"), rows)


def example_record() -> str:
    """The API's example body (every feature at its schema default), as a JSON code block."""
    from ml.schema import DEFAULT_RECORD

    body = json.dumps(dict(DEFAULT_RECORD), indent=2)
    return f"```json\n{body}\n```\n"


def settings_table(target: str) -> str:
    """Environment variables of a pydantic-settings class (``module:Class``): name, default, meaning."""
    import importlib

    module_name, class_name = target.split(":")
    settings = getattr(importlib.import_module(module_name), class_name)
    prefix = settings.model_config.get("env_prefix", "")
    rows = []
    for name, info in settings.model_fields.items():
        env = info.validation_alias if isinstance(info.validation_alias, str) else f"{prefix}{name}".upper()
        if info.is_required():
            default = "(required)"
        elif info.default_factory is not None:
            default = f"`{json.dumps(info.default_factory())}`"
        else:
            default = f"`{info.default}`"
        rows.append((f"`{env}`", default, info.description or ""))
    return markdown_table(("Variable", "Default", "Meaning"), rows)


# -------------------------------------------------------------------------------------- measured numbers


def load_real_metrics(path: Path = REAL_METRICS) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _f(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}"


def _figure(key: str, value: float) -> str:
    """A split figure as the docs print it: counts whole, shares as percentages, scores to 4 digits."""
    if key.startswith("named_"):
        return f"{value:,.0f}"
    if "roc_auc" not in key and (
        key.startswith("screening_") or any(word in key for word in ("precision", "sensitivity", "specificity"))
    ):
        return f"{value:.1%}"
    return _f(value)


def _interval(record: Mapping[str, Any], name: str) -> str:
    """A share with its interval, e.g. "81.5% (80.1-82.9%)"; blank when nobody was there to measure it."""
    if record.get(name) is None:
        return ""
    return f"{record[name]:.1%} ({100 * record[f'{name}_low']:.1f}-{100 * record[f'{name}_high']:.1f}%)"


def _points(record: Mapping[str, Any], name: str) -> str:
    """A difference of shares in percentage points with its interval, e.g. "-7.7 (-9.1 to -6.3)"."""
    if record.get(name) is None:
        return ""
    low, high = 100 * record[f"{name}_low"], 100 * record[f"{name}_high"]
    return f"{100 * record[name]:+.1f} ({low:+.1f} to {high:+.1f})"


def code_substitutions() -> dict[str, str]:
    """Counts and limits the code decides (``{{ n_features }}``, the split's shares, the promotion's limits): the
    prose never writes one by hand."""
    from ml.schema import CLASSES, FEATURES
    from ml.training import comparison
    from ml.training.holdout import HOLDOUT_SHARE
    from ml.training.pipeline import TrainingConfig
    from ml.training.tuning import MIN_NAMED, PRECISION_CONFIDENCE

    config = TrainingConfig()
    return {
        "n_features": str(len(FEATURES)),
        "n_classes": str(len(CLASSES)),
        "floor_min_named": str(MIN_NAMED),
        "floor_confidence": f"{PRECISION_CONFIDENCE:.0%}",
        "holdout_share": f"{HOLDOUT_SHARE:.0%}",
        "test_share": f"{config.test_fraction:.0%}",
        "validation_share": f"{config.validation_fraction:.0%}",
        "comparison_resamples": f"{comparison.RESAMPLES:,}",
        "max_gain_weighted_f1": f"{comparison.MAX_PLAUSIBLE_GAIN:.3f}",
        "max_gain_macro_roc_auc": f"{comparison.MAX_PLAUSIBLE_AUC_GAIN:.3f}",
        "min_macro_roc_auc": f"{comparison.MIN_MACRO_AUC:.2f}",
    }


def substitutions(data: Mapping[str, Any]) -> dict[str, str]:
    """Flat ``{{ name }}`` values for the prose; every number in the text comes from here."""
    test = data["test"]
    subs = {f"real_{k}": _f(v) for k, v in test.items() if isinstance(v, float)}
    _run_substitutions(data, subs)
    _floor_and_ada_substitutions(data, subs)
    _screening_substitutions(data, subs)
    _spread_substitutions(data, subs)
    return subs


def _run_substitutions(data: Mapping[str, Any], subs: dict[str, str]) -> None:
    """The run: rows, split, the chosen strategy, per-class scores, class counts, duplicates, the macro-F1 rule."""
    subs["real_test_rows"] = f"{data['split']['test_rows']:,}"
    subs["real_rows"] = f"{data['data']['rows']:,}"
    subs["real_split_id"] = data["split"]["split_id"]
    subs["real_seed"] = str(data["split"]["seed"])
    subs["real_strategy"] = data["chosen"]["description"]
    subs["real_rule_weights"] = " / ".join(f"{w:g}" for w in data["chosen"]["decision_rule_weights"])
    subs["real_training_seconds"] = data["chosen"]["training_seconds"]
    subs["real_measured"] = data["measured"]
    for name, scores in data["per_class"].items():
        for metric, value in scores.items():
            subs[f"real_{metric}_{name}"] = _f(value, 3) if isinstance(value, float) else f"{value:,}"
    counts = data["data"]["class_counts"]
    for name, count in counts.items():
        subs[f"real_count_{name}"] = f"{count:,}"
        subs[f"real_share_{name}"] = f"{100 * count / data['data']['rows']:.1f}%"
        # the sqrt-balanced training weight sqrt(n / (3 * n_class)); ml.train uses its fit fold's counts (same to 2 digits)
        subs[f"real_class_weight_{name}"] = f"{(data['data']['rows'] / (len(counts) * count)) ** 0.5:.2g}"
    for name, count in data["data"]["duplicates"].items():
        subs[f"real_dup_{name}"] = f"{count:,}"
    rule = data["macro_f1_rule"]
    subs["real_macro_rule_weights"] = " / ".join(f"{w:g}" for w in rule["weights"])
    for metric, value in rule.items():
        if isinstance(value, float):
            subs[f"real_macro_rule_{metric}"] = _f(value, 3)
    holdout = data["split"]["promotion_holdout"]
    subs["real_holdout_rows"] = f"{holdout['rows']:,}"
    subs["real_holdout_share"] = f"{holdout['share']:.0%}"
    subs["real_validation_weighted_f1"] = _f(data["validation_tuned_on"]["weighted_f1"])


def _floor_and_ada_substitutions(data: Mapping[str, Any], subs: dict[str, str]) -> None:
    """The precision floor's evidence and outcomes, and the comparison with the ADA risk test."""
    floor = data["precision_floor"]
    subs["real_floor_lift"] = f"{floor['min_precision_lift']:g}"
    for key, outcome in (("floor", floor["with_floor"]), ("nofloor", floor["without_floor"])):
        subs |= {f"real_{key}_{name}": text for name, text in _floor_outcome(outcome).items()}
    ada = data["ada_comparison"]
    subs["real_ada_cutoff"] = str(ada["ada_cutoff"])
    for target, compared in ((t, ada[t]) for t in ADA_TARGETS):
        for name, value in compared.items():
            if isinstance(value, float):
                subs[f"real_ada_{target}_{name}"] = _f(value, 3) if "auc" in name else f"{value:.1%}"


def _floor_outcome(outcome: Mapping[str, Any]) -> dict[str, str]:
    """One decision rule's outcome on the test split, as both the prose and the table print it."""
    return {
        "candidate": outcome["candidate"],
        "weights": " / ".join(f"{w:g}" for w in outcome["class_weights"]),
        "weighted_f1": _f(outcome["test_weighted_f1"]),
        "named_prediabetic": f"{outcome['test_named'][1]:,}",
        "precision_prediabetic": f"{outcome['test_precision'][1]:.1%}",
    }


def _screening_substitutions(data: Mapping[str, Any], subs: dict[str, str]) -> None:
    """The screening levels, their outcomes on the test split, and the ways of reading the access answers."""
    screening = data["screening"]
    for name in ("average", "prediabetes_average", "raised", "raised_not_checked", "high"):
        subs[f"real_screening_{name}"] = f"{100 * screening[name]:.1f}%"
    # The two sections share key names (rows, flagged, ada_flagged): each keeps its own prefix.
    for prefix, section in (("real_screening", screening["test"]), ("real_not_checked", screening["test_not_checked"])):
        for name, value in section.items():
            subs[f"{prefix}_{name}"] = f"{value:,}" if isinstance(value, int) else f"{100 * value:.1f}%"
    for name, value in screening["access"].items():
        if isinstance(value, float):
            subs[f"real_access_{name}"] = _f(value) if "roc_auc" in name else f"{value:.1%}"
    for level, outcome in screening["test_levels"].items():
        for name, value in outcome.items():
            subs[f"real_level_{level}_{name}"] = "" if value is None else f"{value:.1%}"
    # The sentence from the code that words it, the figures from the file: a stored sentence went stale.
    from frontend.about import in_ten
    from ml.training.screening_subgroups import who_is_missed

    subs["real_screening_who_is_missed"] = who_is_missed(pd.DataFrame(data["screening_subgroups"]))
    # The sidebar's words ("about 9 in 10"), by the UI's own function, from the same figures as its manifest.
    for name in ("precision", "sensitivity", "sensitivity_diabetes"):
        subs[f"real_in_ten_{name}"] = in_ten(screening["test"][name])
    for name, value in data["prediabetes_probability"].items():
        subs[f"real_p1_{name}"] = f"{value:.1%}"
    for option, figures in data["access_options"]["summary"].items():
        for name, spread in figures.items():
            subs[f"real_access_{option}_{name}"] = _f(spread["mean"]) if "roc_auc" in name else f"{spread['mean']:.1%}"
    subs["real_access_splits"] = str(len(data["access_options"]["seeds"]))


def _spread_substitutions(data: Mapping[str, Any], subs: dict[str, str]) -> None:
    """The spread over other grouped splits, the no-regression verdicts and the strategies' scores."""
    spread = data["split_spread"]
    subs["real_spread_splits"] = str(len(spread["per_seed"]))
    for metric, summary in spread["summary"].items():
        for stat, value in summary.items():
            subs[f"real_spread_{metric}_{stat}"] = _figure(metric, value)
    for metric, verdict in spread.get("no_regression", {}).items():
        if isinstance(verdict, dict):
            for stat, value in verdict.items():
                if isinstance(value, float):
                    subs[f"real_noreg_{metric}_{stat}"] = _f(value)
    for strategy in data["strategies"]:
        for metric in ("weighted_f1", "macro_f1"):
            if strategy.get(metric) is not None:
                subs[f"real_{strategy['key']}_{metric}"] = _f(strategy[metric])


def _optional(value: float | str | None) -> str:
    """A measured figure, a range written by hand (e.g. "0.7854-0.7865"), or blank when not measured."""
    if value is None:
        return ""
    return value if isinstance(value, str) else _f(value)


def _overall_table(data: Mapping[str, Any]) -> str:
    """The test split's headline metrics."""
    test = data["test"]
    labels = _class_labels()
    return markdown_table(
        ("Metric", "Test split"),
        [
            ("Weighted F1 (primary)", _f(test["weighted_f1"])),
            ("Macro F1", _f(test["macro_f1"])),
            ("Macro one-vs-rest ROC-AUC", _f(test["macro_roc_auc"])),
            ("Log loss", _f(test["log_loss"])),
            ("Expected calibration error (top label, 15 bins)", _f(test["ece"])),
            *(
                (f"Expected calibration error of p({labels[name].lower()}) (classwise, 15 bins)", _f(s["ece"]))
                for name, s in data["per_class"].items()
            ),
            ("Balanced accuracy", _f(test["balanced_accuracy"])),
            ("Accuracy", _f(test["accuracy"])),
        ],
    )


def _per_class_table(data: Mapping[str, Any]) -> str:
    """Precision, recall, F1 and ROC-AUC of each class."""
    labels = _class_labels()
    return markdown_table(
        ("Class", "Test rows", "Precision", "Recall", "F1", "One-vs-rest ROC-AUC"),
        [
            (
                labels[name],
                f"{s['support']:,}",
                _f(s["precision"], 3),
                _f(s["recall"], 3),
                _f(s["f1"], 3),
                _f(s["roc_auc"], 3),
            )
            for name, s in data["per_class"].items()
        ],
    )


def _strategies_table(data: Mapping[str, Any]) -> str:
    """The imbalance strategies compared."""
    return markdown_table(
        ("Strategy", "Validation weighted F1", "Test weighted F1", "Test macro F1", "Test macro ROC-AUC", "Note"),
        [
            (
                s["label"],
                _optional(s.get("validation_weighted_f1")),
                _optional(s.get("weighted_f1")),
                _optional(s.get("macro_f1")),
                _optional(s.get("macro_roc_auc")),
                s.get("note", ""),
            )
            for s in data["strategies"]
        ],
    )


def _subgroups_table(data: Mapping[str, Any]) -> str:
    """The metrics by subgroup (Sex, Age band, Income band)."""
    return markdown_table(
        (
            "Feature",
            "Group",
            "Test rows",
            "Weighted F1",
            "Macro F1",
            "Macro AUC",
            "Recall: pre-diabetes",
            "Recall: diabetes",
            "ECE",
        ),
        [
            (
                g["feature"],
                g["group"],
                f"{g['rows']:,}",
                _f(g["weighted_f1"]),
                _f(g["macro_f1"]),
                _f(g["macro_roc_auc"]),
                _f(g["recall_prediabetic"], 3),
                _f(g["recall_diabetic"], 3),
                _f(g["ece"]),
            )
            for g in data["subgroups"]
        ],
    )


def _duplicates_table(data: Mapping[str, Any]) -> str:
    """How many rows repeat an earlier one."""
    return markdown_table(
        ("Count", "Rows"),
        [
            ("Rows in the file", f"{data['data']['rows']:,}"),
            (
                "Exact duplicate rows (features and label repeat an earlier row)",
                f"{data['data']['duplicates']['exact']:,}",
            ),
            ("Rows whose feature vector repeats an earlier row", f"{data['data']['duplicates']['feature_vector']:,}"),
            ("Feature vectors seen with more than one label", f"{data['data']['duplicates']['mixed_label_vectors']:,}"),
        ],
    )


def _no_regression_table(data: Mapping[str, Any]) -> str:
    """The paired comparison with the figures before the last change, over the same seeds."""
    verdicts = data["split_spread"].get("no_regression", {})
    return markdown_table(
        ("Metric", "Before (same seeds)", "Now", "Mean paired difference", "Allowed drop (1 sd)", "Regression"),
        [
            (
                SPREAD_ROWS[name],
                _f(v["reference_mean"]),
                _f(v["new_mean"]),
                f"{v['mean_paired_difference']:+.4f} ± {_f(v['sd_of_paired_differences'])}",
                _f(v["allowed_drop"]),
                "no" if v["met"] else "**yes**",
            )
            for name, v in verdicts.items()
            if isinstance(v, dict)
        ],
    )


def _ada_table(data: Mapping[str, Any]) -> str:
    """The model against the ADA risk test, for each target."""
    ada = data["ada_comparison"]
    return markdown_table(
        (
            "People with",
            "Model score",
            "ROC-AUC: model / ADA",
            f"ADA (>= {ada['ada_cutoff']} points): sensitivity",
            "ADA: specificity",
            "Model: specificity at the same sensitivity",
        ),
        [
            (
                label,
                score,
                f"{_f(ada[target]['model_roc_auc'], 3)} / {_f(ada[target]['ada_roc_auc'], 3)}",
                f"{ada[target]['ada_sensitivity']:.1%}",
                f"{ada[target]['ada_specificity']:.1%}",
                f"{ada[target]['model_specificity']:.1%}",
            )
            for target, (label, score) in ADA_TARGETS.items()
        ],
    )


def _behaviour_table(data: Mapping[str, Any]) -> str:
    """How p(diabetes) moves when one answer steps up."""
    return markdown_table(
        (
            "Answer one step up",
            "Rows that can step up",
            "p(diabetes) falls by > 1 point",
            "rises by > 1 point",
            "Mean change (points)",
        ),
        [
            (
                f"`{b['feature']}`",
                f"{b['rows']:,}",
                f"{b['lowered_share']:.1%}",
                f"{b['raised_share']:.1%}",
                f"{100 * b['mean_change']:+.2f}",
            )
            for b in data["behaviour"]
        ],
    )


def _precision_floor_table(data: Mapping[str, Any]) -> str:
    """The served decision rule with the precision floor, and without it."""
    floor = data["precision_floor"]
    return markdown_table(
        ("Decision rule", "Candidate", "Weights", "Test weighted F1", "Named pre-diabetic", "Their precision"),
        [
            (label, *_floor_outcome(outcome).values())
            for label, outcome in (
                (f"With the floor ({floor['min_precision_lift']:g}x base rate, served)", floor["with_floor"]),
                ("Without it", floor["without_floor"]),
            )
        ],
    )


def _alternatives_table(data: Mapping[str, Any]) -> str:
    """Other models tried."""
    return markdown_table(
        ("Model", "Validation macro AUC", "Test macro AUC", "Test log loss", "Note"),
        [
            (
                a["label"],
                _optional(a.get("validation_macro_roc_auc")),
                _optional(a.get("macro_roc_auc")),
                _optional(a.get("log_loss")),
                a.get("note", ""),
            )
            for a in data["alternatives"]
        ],
    )


def _screening_table(data: Mapping[str, Any]) -> str:
    """Whom the screening levels flag, beside the ADA test."""
    test = data["screening"]["test"]
    ada = data["ada_comparison"]
    return markdown_table(
        ("On the test split", "'raised' or 'high' (model)", f"ADA test, >= {ada['ada_cutoff']} points"),
        [
            ("People flagged", f"{test['flagged']:.1%}", f"{test['ada_flagged']:.1%}"),
            ("Sensitivity: people with pre-diabetes or diabetes found", f"{test['sensitivity']:.1%}", f"{test['ada_sensitivity']:.1%}"),
            ("... people with pre-diabetes found", f"{test['sensitivity_prediabetes']:.1%}", f"{test['ada_sensitivity_prediabetes']:.1%}"),
            ("... people with diabetes found", f"{test['sensitivity_diabetes']:.1%}", f"{ada['diabetes']['ada_sensitivity']:.1%}"),
            ("Specificity: people with neither not flagged", f"{test['specificity']:.1%}", f"{test['ada_specificity']:.1%}"),
            (
                "People not checked in 5 years flagged",
                f"{data['screening']['test_not_checked']['flagged']:.1%}",
                f"{data['screening']['test_not_checked']['ada_flagged']:.1%}",
            ),
        ],
    )  # fmt: skip


def _level_table(data: Mapping[str, Any]) -> str:
    """Each screening level: its risks, how many people, how many of them affected."""
    levels = data["screening"]["test_levels"]
    cutoffs = data["screening"]
    return markdown_table(
        ("Level", "Risk", "Share of the test split's people", "Share of them with pre-diabetes or diabetes"),
        [
            (
                level,
                {
                    "lower": f"below {cutoffs['raised']:.1%} ({cutoffs['raised_not_checked']:.1%} if not checked)",
                    "raised": f"from {cutoffs['raised']:.1%} ({cutoffs['raised_not_checked']:.1%} if not checked)",
                    "high": f"from {cutoffs['high']:.1%}",
                }[level],
                f"{outcome['people']:.1%}",
                "" if outcome["affected"] is None else f"{outcome['affected']:.1%}",
            )
            for level, outcome in levels.items()
        ],
    )


def _screening_subgroups_table(data: Mapping[str, Any]) -> str:
    """Sensitivity and specificity of the screening by subgroup, beside the ADA test's."""
    return markdown_table(
        (
            "Feature",
            "Group",
            "Test rows",
            "With pre-diabetes or diabetes",
            "Sensitivity: model",
            "ADA test",
            "Difference (points)",
            "Specificity: model",
            "ADA test",
            "Difference (points)",
        ),
        [
            (
                g["feature"],
                g["group"],
                f"{g['rows']:,}",
                f"{g['positives']:,}",
                _interval(g, "sensitivity_model"),
                _interval(g, "sensitivity_ada"),
                _points(g, "sensitivity_difference"),
                _interval(g, "specificity_model"),
                _interval(g, "specificity_ada"),
                _points(g, "specificity_difference"),
            )
            for g in data["screening_subgroups"]
        ],
    )


def _access_options_table(data: Mapping[str, Any]) -> str:
    """The ways of reading the access-to-care answers, compared."""
    options = data["access_options"]["summary"]
    return markdown_table(
        (
            "Access answers",
            "ROC-AUC",
            "Specificity at the ADA test's sensitivity",
            "In-care people one access answer lowers",
            "Not checked in 5 years flagged (ADA test)",
        ),
        [
            (
                label,
                f"{_f(options[key]['roc_auc']['mean'])} ± {_f(options[key]['roc_auc']['sd'])}",
                f"{options[key]['specificity_at_ada_sensitivity']['mean']:.1%} ± "
                f"{options[key]['specificity_at_ada_sensitivity']['sd']:.1%}",
                f"{options[key]['lowered_by_one_access_answer']['mean']:.1%}",
                f"{options[key]['not_checked_flagged']['mean']:.1%} "
                f"({options[key]['not_checked_ada_flagged']['mean']:.1%})",
            )
            for key, label in ACCESS_OPTIONS.items()
            if key in options
        ],
    )


def _class_labels() -> dict[str, str]:
    from ml.schema import CLASSES

    return {c.name: c.label for c in CLASSES}


#: Each generated page of real-data figures, and the function that writes its table.
REAL_TABLES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "real_screening.md": _screening_table,
    "real_screening_levels.md": _level_table,
    "real_screening_spread.md": lambda data: _spread_table(data, SCREENING_SPREAD_ROWS),
    "real_screening_subgroups.md": _screening_subgroups_table,
    "real_access_options.md": _access_options_table,
    "real_overall.md": _overall_table,
    "real_split_spread.md": lambda data: _spread_table(data, SPREAD_ROWS),
    "real_no_regression.md": _no_regression_table,
    "real_ada.md": _ada_table,
    "real_behaviour.md": _behaviour_table,
    "real_precision_floor.md": _precision_floor_table,
    "real_alternatives.md": _alternatives_table,
    "real_per_class.md": _per_class_table,
    "real_strategies.md": _strategies_table,
    "real_subgroups.md": _subgroups_table,
    "real_duplicates.md": _duplicates_table,
}


def real_tables(data: Mapping[str, Any]) -> dict[str, str]:
    """Every table of `REAL_TABLES`, by its file name."""
    return {name: table(data) for name, table in REAL_TABLES.items()}


def _spread_table(data: Mapping[str, Any], rows: Mapping[str, str]) -> str:
    """Seed 42's figure, then the mean ± sd and the range over the other grouped splits, for each of `rows`."""
    spread = data["split_spread"]["summary"]
    return markdown_table(
        ("Figure", f"Seed {data['split']['seed']} (the reported split)", "Mean ± sd, other splits", "Range"),
        [
            (
                name,
                _figure(key, data["figures"][key]),
                f"{_figure(key, spread[key]['mean'])} ± {_figure(key, spread[key]['sd'])}",
                f"{_figure(key, spread[key]['min'])} to {_figure(key, spread[key]['max'])}",
            )
            for key, name in rows.items()
            if key in spread and key in data["figures"]
        ],
    )


# ---------------------------------------------------------------------------------------------- costs


def cost_tables() -> str:
    """Every profile's total, each one's lines, the optional extras and the unit prices, from stacks.costs."""
    from stacks import costs

    parts = [
        markdown_table(
            ("Profile", "Stack files", "Per month"),
            [
                (
                    p.title,
                    ", ".join(f"`{p.stack}` {project}" for project in p.projects),
                    f"**{costs.dollars(p.monthly)}**",
                )
                for p in costs.PROFILES
            ],
        )
    ]
    for p in costs.PROFILES:
        rows = [
            (
                project,
                line.item,
                f"{line.quantity:,.6g} {costs.PRICES[line.price].unit.removeprefix('per ')}",
                costs.dollars(line.monthly),
                line.note,
            )
            for project, lines in p.lines().items()
            for line in lines
        ]
        parts.append(f"\n**{p.title}** (`{p.key}`): {costs.dollars(p.monthly)} a month\n\n")
        parts.append(markdown_table(("Stack", "Item", "Quantity", "Per month", "Assumption"), rows))
    extras = [(line.item, costs.dollars(line.monthly), line.note) for line in costs.OPTION_LINES["waf"]()]
    parts.append(
        "\n**Options** on top of a profile: HTTPS (an ACM public certificate) costs nothing; the WAF rule:\n\n"
    )
    parts.append(markdown_table(("Item", "Per month", "Assumption"), extras))
    parts.append(f"\n**Unit prices** ({costs.REGION}, on-demand; a month is {costs.HOURS_PER_MONTH} hours):\n\n")
    parts.append(
        markdown_table(
            ("Price", "USD", "Unit", "Source", "Checked"),
            [(key, f"{price.usd:g}", price.unit, price.source, price.checked) for key, price in costs.PRICES.items()],
        )
    )
    return "".join(parts)


def cost_substitutions() -> dict[str, str]:
    """`{{ cost_<profile> }}` (monthly total) and `{{ cost_price_<key> }}` (unit price) for the prose."""
    from stacks import costs

    subs = {f"cost_{p.key.replace('-', '_')}": costs.dollars(p.monthly) for p in costs.PROFILES}
    subs |= {f"cost_price_{key}": f"${price.usd:g}" for key, price in costs.PRICES.items()}
    subs["cost_public_ipv4_month"] = costs.dollars(costs.PRICES["public_ipv4_hour"].usd * costs.HOURS_PER_MONTH)
    subs["cost_nat_month"] = costs.dollars(costs.PRICES["nat_hour"].usd * costs.HOURS_PER_MONTH)
    subs["cost_waf"] = costs.dollars(costs.total(costs.OPTION_LINES["waf"]()))
    return subs


# ---------------------------------------------------------------------------------------- API reference


def discover_modules(packages: Sequence[str] = PACKAGES, root: Path = ROOT) -> dict[str, list[str]]:
    """Importable module names per top-level package, found on disk without importing anything."""
    found: dict[str, list[str]] = {}
    for package in packages:
        if not (root / package / "__init__.py").is_file():
            continue
        names = [package]
        for info in pkgutil.walk_packages([str(root / package)], prefix=f"{package}."):
            if info.name.rsplit(".", 1)[-1] == "__main__" or info.name in ENTRY_SCRIPTS:
                continue
            names.append(info.name)
        found[package] = sorted(names)
    return found


def api_page(modules: Mapping[str, Sequence[str]]) -> str:
    lines = [
        ".. This page is generated by docs/_ext/project_tables.py at every build; do not edit.",
        "",
        "Modules",
        "=======",
        "",
    ]
    for package, names in modules.items():
        title = _PACKAGE_TITLES.get(package, package)
        lines += [title, "-" * len(title), "", ".. autosummary::", "   :toctree: _autosummary", ""]
        lines += [f"   {name}" for name in names]
        lines.append("")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------- the hooks


def generate(app: Sphinx, config: Config) -> None:
    _write(GENERATED / "features.md", features_table())
    _write(GENERATED / "questions.md", questions_table())
    _write(GENERATED / "classes.md", classes_table())
    _write(GENERATED / "subgroups.md", subgroups_table())
    _write(GENERATED / "example_record.md", example_record())
    for name, target in SETTINGS.items():
        if (ROOT / target.split(":")[0].replace(".", "/")).with_suffix(".py").is_file():
            _write(GENERATED / name, settings_table(target))
    for name, text in real_tables(load_real_metrics()).items():
        _write(GENERATED / name, text)
    _write(GENERATED / "costs.md", cost_tables())
    modules = discover_modules()
    _write(API_PAGE, api_page(modules))
    # Pages of modules that were removed or are no longer documented would otherwise break the -W build.
    documented = {name for names in modules.values() for name in names}
    for stale in (API_PAGE.parent / "_autosummary").glob("*.*"):
        if stale.name.rsplit(".", 1)[0] not in documented:
            stale.unlink()


def setup(app: Sphinx) -> dict[str, Any]:
    # At config time, before Sphinx lists the source files: the generated pages must exist by then, and autosummary
    # (at builder-inited) must find api/packages.rst among them.
    app.connect("config-inited", generate)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
