"""`manifest.json`, typed: the contract between training, the artifact loader, the service's `/model` and the UI.

Training writes one, the loader refuses any that does not validate (every number finite and in range, every list
the right length, the version in its format), and the service and the UI read its fields by name, not by string
keys. It needs only pydantic, so the UI image can read it too.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from ml.schema import CLASS_NAMES, FEATURE_NAMES, N_CLASSES, SCHEMA_VERSION

#: Version of this file's layout; the loader reads exactly this one.
FORMAT_VERSION = 4
#: `<UTC time of training>-<first 8 hex digits of model.txt's sha256>`, e.g. 20261201T122723Z-8278e4c8.
MODEL_VERSION_PATTERN = r"^\d{8}T\d{6}Z-[0-9a-f]{8}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


def _non_finite_number(data: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinite number anywhere in `data` (JSON-like), or None."""
    if isinstance(data, float) and not math.isfinite(data):
        return f"{where or 'value'} is {data}"
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _non_finite_number(value, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


_Probability = Annotated[float, Field(ge=0.0, le=1.0)]
_PerClass = Annotated[tuple[float, ...], Field(min_length=N_CLASSES, max_length=N_CLASSES)]
_Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
# A file of the artifact's own folder: no path separators, not hidden.
_FileName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")]


class _Record(BaseModel):
    # Typed numbers are refused when NaN or infinite; `Manifest` also checks its free-form parts.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Calibration(_Record):
    """p = softmax(raw / temperature + bias), fitted on the validation fold by log loss.

    One temperature plus one bias per class: bias-corrected temperature scaling (vector scaling would fit one
    scale per class).
    """

    method: Literal["bias_corrected_temperature_scaling"] = "bias_corrected_temperature_scaling"
    #: Bounded so that a damaged value (1e-320, 1e300) is refused at load instead of producing NaNs later.
    temperature: Annotated[float, Field(ge=1e-4, le=1e4)] = 1.0  # ml.training.tuning.MIN/MAX_TEMPERATURE
    bias: Annotated[_PerClass, AfterValidator(lambda b: _bounded(b, 1e4))] = (0.0,) * N_CLASSES


class DecisionRule(_Record):
    """Predicted class = argmax(p * class_weights); equal weights are the plain argmax."""

    method: Literal["argmax", "cost_sensitive_argmax"] = "argmax"
    class_weights: Annotated[_PerClass, AfterValidator(lambda w: _positive(w, 1e3))] = (1.0,) * N_CLASSES

    @classmethod
    def from_weights(cls, weights: tuple[float, ...]) -> DecisionRule:
        if len(set(weights)) == 1:
            return cls(method="argmax", class_weights=weights)
        return cls(method="cost_sensitive_argmax", class_weights=weights)


def _bounded(values: tuple[float, ...], limit: float) -> tuple[float, ...]:
    if any(abs(v) > limit for v in values):
        raise ValueError(f"every value must be within +-{limit:g}, got {list(values)}")
    return values


def _positive(values: tuple[float, ...], limit: float) -> tuple[float, ...]:
    if any(not 0 < v <= limit for v in values):
        raise ValueError(f"every weight must be > 0 and <= {limit:g}, got {list(values)}")
    return values


class RuleOutcome(_Record):
    """One decision rule's candidate and what it does: validation score, and test figures for the record only."""

    candidate: str
    class_weights: Annotated[_PerClass, AfterValidator(lambda w: _positive(w, 1e3))]
    validation_weighted_f1: _Probability
    test_weighted_f1: _Probability
    test_named: Annotated[tuple[int, ...], Field(min_length=N_CLASSES, max_length=N_CLASSES)]
    test_precision: Annotated[tuple[_Probability, ...], Field(min_length=N_CLASSES, max_length=N_CLASSES)]


class PrecisionFloor(_Record):
    """The decision rule's precision floor, and what training would have served without it.

    A class other than "no diabetes" may get a weight other than 1 only where the rule then names it on the
    validation fold at least `min_named` times, with a precision whose lower bound (Wilson, one-sided, at
    `confidence`) is at least `min_precision_lift` times its base rate there. Both outcomes are chosen on the
    validation fold the same way; `test_named` counts the people each rule gives each label.
    """

    min_precision_lift: float = Field(ge=1.0)
    #: 0 in manifests written before the floor asked for evidence (the precision itself was compared then).
    min_named: int = Field(default=0, ge=0)
    confidence: float = Field(default=0.0, ge=0.0, lt=1.0)
    with_floor: RuleOutcome
    without_floor: RuleOutcome


class ModelFile(_Record):
    file: str
    type: Literal["lightgbm.Booster"] = "lightgbm.Booster"
    num_trees: int = Field(ge=1)


class ImbalanceStrategy(_Record):
    """Which strategy won on the validation fold, and every candidate's scores (test ones for the record only)."""

    chosen: str
    weighting: str
    compared: dict[str, dict[str, float]]


class TrainingRecord(_Record):
    config: dict[str, Any]
    lightgbm_params: dict[str, Any]
    best_iteration: int
    seconds: float


class Metrics(_Record):
    """Scalar metrics by name (see `ml.training.evaluate.classification_metrics`)."""

    test: dict[str, float] = Field(description="On the held-out test split: nothing was chosen on these rows.")
    validation_tuned_on: dict[str, float] = Field(
        description="On the validation fold that early stopping, the strategy, the calibration and the decision rule "
        "were tuned on: optimistic, not an estimate for new people."
    )


class DataRecord(_Record):
    """The training file's fingerprint."""

    file: str
    sha256: _Sha256
    rows: int = Field(ge=1)
    synthetic: bool
    duplicates: dict[str, int]
    class_counts: dict[str, int]


class HoldoutRecord(_Record):
    """The promotion holdout's rows in this data file (`ml.training.holdout`): left out of every fold."""

    definition: str
    share: _Probability
    rows: int = Field(ge=0)
    groups: int = Field(ge=0)
    class_counts: dict[str, int]


class SplitRecord(_Record):
    """The protocols of the test split and of the validation fold (`ml.training.data.Split.protocol`)."""

    promotion_holdout: HoldoutRecord
    test: dict[str, Any]
    validation: dict[str, Any]

    @property
    def test_split_id(self) -> str:
        return str(self.test["split_id"])

    @property
    def learnt_from_rows(self) -> int:
        """The fit and validation rows: the test split's other side (the holdout is outside both)."""
        return int(self.test["train"]["rows"])


class ScreeningComparison(_Record):
    """The model's score and the ADA risk test's points as screening tests for one target, on the same rows.

    `ada_*` at the test's cut-off (points >= `AdaComparison.ada_cutoff`); `model_*` at `model_threshold`, the
    highest threshold on the model's score whose sensitivity reaches the ADA test's.
    """

    positives: int = Field(ge=1)
    negatives: int = Field(ge=1)
    ada_roc_auc: _Probability
    model_roc_auc: _Probability
    ada_sensitivity: _Probability
    ada_specificity: _Probability
    model_threshold: float
    model_sensitivity: _Probability
    model_specificity: _Probability


class AdaComparison(_Record):
    """The model against the ADA type 2 diabetes risk test on the test split (`ml.training.ada_comparison`).

    `prediabetes_or_diabetes` compares p(pre-diabetes) + p(diabetes) with the points for people with either;
    `diabetes` compares p(diabetes) with the points for people with diabetes; `prediabetes` compares
    p(pre-diabetes) with the points for people with pre-diabetes against people with neither (the rows of people
    with diabetes left out). The items the survey lacks (`unavailable_items`) score 0, so the ADA figures are those
    of a lower bound of the real test's score.
    """

    rows: int = Field(ge=1)
    ada_cutoff: int = Field(ge=0)
    unavailable_items: tuple[str, ...]
    prediabetes_or_diabetes: ScreeningComparison
    diabetes: ScreeningComparison
    prediabetes: ScreeningComparison


def _equal(expected: Any, what: str) -> AfterValidator:
    """A field that must hold what this code was written for; anything else means: retrain with this code."""

    def check(value: Any) -> Any:
        if value != expected:
            raise ValueError(f"{what} {value!r} differs from this code's {expected!r}; retrain the model")
        return value

    return AfterValidator(check)


class ScreeningLevel(StrEnum):
    """How a screening risk compares with the thresholds the model was given on its validation fold."""

    LOWER = "lower"
    RAISED = "raised"
    HIGH = "high"


class ScreeningPerformance(_Record):
    """The raised level (raised or high) on the test rows, people the model never saw in training, beside the ADA
    risk test at its cut-off (5 points or more) on the same rows."""

    rows: int = Field(ge=1)
    flagged: _Probability = Field(description="Share of people whose risk is raised or high.")
    precision: _Probability = Field(description="Share of the flagged people who have pre-diabetes or diabetes.")
    sensitivity: _Probability = Field(description="Share of the people with pre-diabetes or diabetes who are flagged.")
    sensitivity_diabetes: _Probability = Field(description="Share of the people with diabetes who are flagged.")
    sensitivity_prediabetes: _Probability = Field(description="Share of the people with pre-diabetes who are flagged.")
    specificity: _Probability = Field(description="Share of the people with neither who are not flagged.")
    ada_flagged: _Probability = Field(description="Share of people the ADA test flags.")
    ada_sensitivity: _Probability
    ada_sensitivity_prediabetes: _Probability
    ada_specificity: _Probability


class FlaggedShare(_Record):
    """How often the people of one group get a raised or high result on the test rows, and how often the ADA test
    flags the same people."""

    rows: int = Field(ge=0)
    flagged: _Probability
    ada_flagged: _Probability


class LevelOutcome(_Record):
    """The people of the test rows given one level: their share, and the share of them with pre-diabetes or
    diabetes (None when no test row got the level)."""

    people: _Probability
    affected: _Probability | None


class AccessHandling(_Record):
    """How the answers about access to care (`ml.schema.CARE_ACCESS`) enter the screening risk, and what it costs.

    The risk is the model's, with every access answer read as "in care" (`ml.inference.screening`), so no access
    answer can lower it. The cost on the test rows: ROC-AUC for pre-diabetes or diabetes, and the specificity at the
    ADA risk test's sensitivity, of the risk as the answers were given and as it is served.
    """

    method: Literal["scored_as_if_in_care"] = "scored_as_if_in_care"
    roc_auc_as_given: _Probability
    roc_auc_in_care: _Probability
    specificity_at_ada_sensitivity_as_given: _Probability
    specificity_at_ada_sensitivity_in_care: _Probability


class ScreeningCutoffs(_Record):
    """The averages a risk is told against and the thresholds of its levels (`ml.training.screening` chooses them)."""

    average: _Probability = Field(
        description="Share of adults with pre-diabetes or diabetes among the rows the model was trained on (not "
        "the test split, not the promotion holdout)."
    )
    prediabetes_average: _Probability = Field(
        description="Share of adults with pre-diabetes among the rows the model was trained on (fit and validation)."
    )
    raised: _Probability = Field(
        description="r from which a blood test is advised, on the validation fold: the highest threshold at which the "
        "model finds at least as many of the people with pre-diabetes or diabetes, and of the people with "
        "pre-diabetes, as the ADA risk test at its cut-off of 5 points."
    )
    raised_not_checked: _Probability = Field(
        description="The raised threshold for people whose cholesterol was not checked in the past five years: at "
        "most `raised`, and low enough that they are flagged at least as often as the ADA risk test flags them, on "
        "the validation fold."
    )
    high: _Probability = Field(
        description="r from which at least half of the people at or above it have pre-diabetes or diabetes, on the "
        "validation fold."
    )

    @model_validator(mode="after")
    def _ordered(self) -> ScreeningCutoffs:
        if not self.raised_not_checked <= self.raised <= self.high:
            raise ValueError(
                f"the thresholds must be ordered raised_not_checked <= raised <= high, got {self.raised_not_checked}, "
                f"{self.raised}, {self.high}"
            )
        return self

    def raised_for(self, not_checked: bool) -> float:
        """The raised threshold of a person whose cholesterol was (not) checked in the past five years."""
        return self.raised_not_checked if not_checked else self.raised

    def level(self, risk: float, not_checked: bool) -> ScreeningLevel:
        """The level of a screening risk; a person not checked recently is raised from a lower risk."""
        if risk >= self.high:
            return ScreeningLevel.HIGH
        if risk >= self.raised_for(not_checked):
            return ScreeningLevel.RAISED
        return ScreeningLevel.LOWER


class ScreeningRule(ScreeningCutoffs):
    """How a risk r = p(pre-diabetes) + p(diabetes) is told to a person, and how that did on the test rows."""

    access: AccessHandling
    test: ScreeningPerformance
    test_not_checked: FlaggedShare = Field(
        description="The people of the test rows whose cholesterol was not checked in the past five years."
    )
    test_levels: dict[ScreeningLevel, LevelOutcome] = Field(description="The people of the test rows, by level.")

    @model_validator(mode="after")
    def _every_level(self) -> ScreeningRule:
        if set(self.test_levels) != set(ScreeningLevel):
            raise ValueError(f"test_levels must hold every level, got {sorted(self.test_levels)}")
        return self


class TrainingReport(_Record):
    """What training decided and measured: the part of the manifest `ml.training.pipeline` writes."""

    calibration: Calibration
    decision_rule: DecisionRule
    precision_floor: PrecisionFloor
    screening: ScreeningRule
    imbalance_strategy: ImbalanceStrategy
    training: TrainingRecord
    metrics: Metrics
    ada_comparison: AdaComparison
    data: DataRecord
    split: SplitRecord


class Manifest(TrainingReport):
    """Everything known about one trained model; `files` seals the other files of the artifact by sha256."""

    model_config = ConfigDict(populate_by_name=True)

    format_version: Annotated[int, _equal(FORMAT_VERSION, "format_version")] = FORMAT_VERSION
    model_version: str = Field(pattern=MODEL_VERSION_PATTERN)
    created_at: datetime
    schema_version: Annotated[str, _equal(SCHEMA_VERSION, "schema_version")] = SCHEMA_VERSION
    feature_names: Annotated[tuple[str, ...], _equal(FEATURE_NAMES, "feature_names")] = FEATURE_NAMES
    class_names: Annotated[tuple[str, ...], _equal(CLASS_NAMES, "class_names")] = CLASS_NAMES
    schema_: dict[str, Any] = Field(alias="schema")
    model: ModelFile
    versions: dict[str, str]
    files: dict[_FileName, _Sha256]

    @model_validator(mode="before")
    @classmethod
    def _every_number_finite(cls, data: Any) -> Any:
        """Free-form parts (metrics, schema, training record) reach `/model` and the UI too: no NaN anywhere."""
        found = _non_finite_number(data)
        if found:
            raise ValueError(f"every number must be finite: {found}")
        return data

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2) + "\n"
