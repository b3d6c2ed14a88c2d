"""The prediction API's wire contract: request, response and error models, all derived from `ml.schema`.

The service declares its routes with these models and the UI's client reads the service's answers with them, so
the two cannot drift apart. It needs only pydantic, and ships in the UI image next to `ml/schema.py`.

Integer-coded features are JSON numbers that must be whole (`1` and `1.0` pass; `1.5`, `"1"` and `true` do not):
JSON Schema's `integer` means exactly that, and the survey file stores every code as `1.0`. They are parsed as
floats, because the model reads float64 rows; the published schema still says `integer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice, repeat
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ml.manifest import (
    SHA256_PATTERN,
    Calibration,
    DecisionRule,
    Manifest,
    Metrics,
    ScreeningLevel,
    ScreeningRule,
)
from ml.schema import (
    CARE_ACCESS,
    CLASSES,
    DEFAULT_RECORD,
    FEATURE_NAMES,
    FEATURES,
    FEATURES_BY_NAME,
    N_CLASSES,
    Feature,
)

#: Records one `POST /predict/batch` accepts unless the service is configured otherwise (`SERVICE_BATCH_LIMIT`).
DEFAULT_BATCH_LIMIT = 1_000
#: The most `SERVICE_BATCH_LIMIT` may be set to.
MAX_BATCH_LIMIT = 10_000
#: The most problems one refused request lists. Validating a batch stops once it has found this many, so refusing a
#: hostile body costs about as much as refusing a small one (one 2 MB batch once built 314,000 problems, 1.5 GB).
MAX_REPORTED_ERRORS = 100
#: Unknown keys of one record that are each named as a problem; a record with more gets one problem for them all.
MAX_NAMED_UNKNOWN_FIELDS = 10
#: The most keys a record can hold and still have each problem named; a body with more keys than its records could
#: hold is refused before it is parsed (`service.json_body`).
MAX_KEYS_PER_RECORD = len(FEATURES) + MAX_NAMED_UNKNOWN_FIELDS
#: Error type of a fraction in a whole-number field; its context lists every such field of the record.
WHOLE_NUMBER_ERROR = "whole_number"
#: Error type of a record with more than `MAX_NAMED_UNKNOWN_FIELDS` unknown keys; its context has their
#: `count` and the first few names as `examples`.
UNKNOWN_FIELDS_ERROR = "too_many_unknown_fields"
_WHOLE_NUMBER_FIELDS = tuple(f.name for f in FEATURES if f.integer)


# ------------------------------------------------------------------------------------------------ requests


def _as_integer(schema: dict[str, Any]) -> None:
    """Publish whole-number fields as JSON Schema integers (their float parsing is an implementation detail)."""
    schema["type"] = "integer"
    schema.pop("multipleOf", None)


def _field(feature: Feature) -> Any:
    """The annotated type of one feature: its kind decides integer or number, its range the bounds."""
    extra: dict[str, Any] = {"x-kind": feature.kind.value}
    if feature.labels:
        extra["x-labels"] = {str(code): label for code, label in feature.labels.items()}

    def schema_extra(schema: dict[str, Any]) -> None:
        if feature.integer:
            _as_integer(schema)
        schema.update(extra)

    return Annotated[
        float,
        Field(
            ge=feature.minimum,
            le=feature.maximum,
            multiple_of=1 if feature.integer else None,
            strict=True,
            allow_inf_nan=False,
            description=f"{feature.description} Allowed: {feature.allowed_values()}.",
            examples=[feature.default],
            json_schema_extra=schema_extra,
        ),
    ]


class _Record(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, title="PatientRecord", json_schema_extra={"examples": [dict(DEFAULT_RECORD)]}
    )

    @model_validator(mode="before")
    @classmethod
    def _few_unknown_fields(cls, data: Any) -> Any:
        """A record of 216,699 unknown keys is one problem, not 216,699 (each an object pydantic would build)."""
        if isinstance(data, dict) and len(data) > MAX_KEYS_PER_RECORD:
            unknown = [str(key) for key in data if key not in FEATURES_BY_NAME]
            examples = [name[:40] for name in islice(unknown, 3)]
            raise PydanticCustomError(
                UNKNOWN_FIELDS_ERROR, "{count} unknown fields", {"count": len(unknown), "examples": examples}
            )
        return data

    @model_validator(mode="after")
    def _exactly_whole(self) -> _Record:
        """pydantic-core's `multiple_of` allows a float epsilon of slack (2.6e-42 passes as 0): refuse any fraction.

        One error names every such field in its context; the service turns it into one problem per field.
        """
        values = self.__dict__
        fractional = [name for name in _WHOLE_NUMBER_FIELDS if not values[name].is_integer()]
        if fractional:
            raise PydanticCustomError(
                WHOLE_NUMBER_ERROR, "Input should be a whole number", {"fields": ", ".join(fractional)}
            )
        return self

    def as_row(self) -> list[float]:
        """The values in schema order, as the model reads them."""
        values = self.__dict__
        return [values[name] for name in FEATURE_NAMES]


_record_fields: dict[str, Any] = {f.name: (_field(f), ...) for f in FEATURES}
if TYPE_CHECKING:  # the fields are generated; type checkers see the base class and its methods
    PatientRecord = _Record
else:
    PatientRecord = create_model(
        "PatientRecord",
        __base__=_Record,
        __doc__=f"One person's {len(FEATURES)} health indicators, keyed by the survey's column names; no other keys.",
        **_record_fields,
    )


def _until_enough_problems(limit: int) -> WrapValidator:
    """Validate the records one by one and stop after `MAX_REPORTED_ERRORS` problems.

    pydantic validates a whole list before it reports, so a batch of 1,000 empty records would build a problem for
    every feature of each to list 100. A record holds at most `MAX_KEYS_PER_RECORD` problems (one per feature, one per
    named unknown key), so this builds fewer than `MAX_REPORTED_ERRORS + MAX_KEYS_PER_RECORD`.
    """

    def validate_records(records: Any, validate: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(records, list) or not 1 <= len(records) <= limit:
            return validate(records)  # not a list, empty or too long: pydantic's one problem
        valid: list[Any] = []
        problems: list[InitErrorDetails] = []
        for index, record in enumerate(records):
            try:
                valid.extend(validate([record]))
            except ValidationError as exc:
                problems.extend(_at_index(exc, index))
                if len(problems) >= MAX_REPORTED_ERRORS:
                    break
        if problems:
            raise ValidationError.from_exception_data("records", problems)
        return valid

    return WrapValidator(validate_records)


def _at_index(exc: ValidationError, index: int) -> list[InitErrorDetails]:
    """The problems of the one-record list `[records[index]]`, located at `index`, with type, message and context."""
    return [
        InitErrorDetails(
            type=PydanticCustomError(error["type"], error["msg"], error.get("ctx")),
            loc=(index, *error["loc"][1:]),
            input=error["input"],
        )
        for error in exc.errors(include_url=False)
    ]


def batch_request_model(limit: int) -> type[BaseModel]:
    """The `POST /predict/batch` body; the record limit is a setting of the service, so the model is made per app."""
    if not 1 <= limit <= MAX_BATCH_LIMIT:
        raise ValueError(f"the batch limit must be from 1 to {MAX_BATCH_LIMIT:,}, got {limit}")
    examples: dict[str, Any] = {"examples": [{"records": [dict(DEFAULT_RECORD), {**DEFAULT_RECORD, "BMI": 31.5}]}]}
    records = Annotated[list[PatientRecord], Field(min_length=1, max_length=limit), _until_enough_problems(limit)]
    fields: dict[str, Any] = {"records": (records, ...)}
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid", title="BatchRequest", json_schema_extra=examples),
        __doc__=f"1 to {limit:,} records, answered in order.",
        **fields,
    )


# ----------------------------------------------------------------------------------------------- responses


class _Probabilities(BaseModel):
    model_config = ConfigDict(title="Probabilities", frozen=True)

    def ordered(self) -> tuple[float, ...]:
        """The probabilities in class-id order (`ml.schema.CLASSES`)."""
        values = self.__dict__
        return tuple(values[c.name] for c in CLASSES)

    @classmethod
    def of(cls, probabilities: Sequence[float]) -> _Probabilities:
        return cls(**{c.name: float(p) for c, p in zip(CLASSES, probabilities, strict=True)})


_probability_fields: dict[str, Any] = {
    c.name: (Annotated[float, Field(ge=0.0, le=1.0, description=f"{c.label}: {c.description}")], ...) for c in CLASSES
}
if TYPE_CHECKING:
    Probabilities = _Probabilities
else:
    Probabilities = create_model(
        "Probabilities",
        __base__=_Probabilities,
        __doc__="Calibrated probability of each class, keyed by the class's stable name; they sum to 1.",
        **_probability_fields,
    )


class Contribution(BaseModel):
    """One answer's share of the screening estimate r = p(pre-diabetes) + p(diabetes) (positive: pushed it up)."""

    model_config = ConfigDict(frozen=True)

    feature: str = Field(description="Column name of the feature.")
    value: float = Field(description="The value sent.")
    value_label: str = Field(description="Human label of the value (the code's meaning, or the number).")
    contribution: float = Field(
        description="This answer's share of this estimate, on the log-odds scale of the screening risk "
        "r = p(pre-diabetes) + p(diabetes) (natural-log units), from TreeSHAP values of the three calibrated "
        "scores: the shares of all answers make up, to first order, how far this estimate's log-odds lie from the "
        "model's starting point. Positive shares pushed this estimate up, negative ones down. A share is not a "
        "what-if: changing the answer can move the estimate by another amount, because answers act together. The "
        "access-to-care answers have no share: they do not move the screening estimate."
    )


def top_contributions(row: Sequence[float], contributions: Sequence[float], top_k: int) -> list[Contribution]:
    """The `top_k` largest shares by magnitude, leaving out answers with no share; ties keep schema order."""
    moved = [j for j in range(len(FEATURES)) if contributions[j] != 0]
    order = sorted(moved, key=lambda j: -abs(contributions[j]))[:top_k]
    return [
        Contribution(
            feature=FEATURES[j].name,
            value=float(row[j]),
            value_label=FEATURES[j].label(row[j]),
            contribution=float(contributions[j]),
        )
        for j in order
    ]


class ScreeningThresholds(BaseModel):
    model_config = ConfigDict(frozen=True)

    raised: float = Field(
        ge=0.0,
        le=1.0,
        description="`raised` from this risk up: a blood test is advised. People whose cholesterol was not checked "
        "in the past five years have their own, lower one; this is the one that applied to this person.",
    )
    high: float = Field(
        ge=0.0, le=1.0, description="`high` from this risk up: about half of the people this high are affected."
    )


class PrediabetesChance(BaseModel):
    """The chance of pre-diabetes alone, against its average: the combined risk is driven by diabetes."""

    model_config = ConfigDict(frozen=True)

    risk: float = Field(ge=0.0, le=1.0, description="p(prediabetic), calibrated, of the in-care answers as `risk`.")
    average: float = Field(
        ge=0.0, le=1.0, description="Share of adults with pre-diabetes among the survey rows the model was trained on."
    )
    ratio: float = Field(ge=0.0, description="risk / average.")


class CareAccess(BaseModel):
    """Present when an answer says the person is outside the care system; `message` says what that means for them."""

    model_config = ConfigDict(frozen=True)

    not_checked: bool = Field(description="Cholesterol not checked in the past five years (`CholCheck` 0).")
    no_coverage: bool = Field(description="No health care coverage (`AnyHealthcare` 0).")
    cost_barrier: bool = Field(description="Could not see a doctor because of the cost (`NoDocbcCost` 1).")
    message: str = Field(
        description="In plain words: a blood test is worth having whatever the level, and why the estimate may be "
        "too low for this person."
    )

    @classmethod
    def of(cls, gaps: Mapping[str, bool], rule: ScreeningRule, level: ScreeningLevel) -> CareAccess | None:
        """None for a person in care (checked, covered, never kept from a doctor by the cost). `gaps`: by
        `CARE_ACCESS` name (`care_gaps`). At 'raised' or 'high' the test is already advised: the message says it
        matters all the more, never the softer "worth having" that reads as a step down from the level's advice."""
        if not any(gaps.values()):
            return None
        reasons = [CARE_GAPS[name].reason for name in CARE_ACCESS if gaps[name]]
        said = reasons[0] if len(reasons) == 1 else f"{', '.join(reasons[:-1])} and {reasons[-1]}"
        if level is ScreeningLevel.LOWER:
            opening = (
                "A blood test (HbA1c or fasting glucose) is worth having whatever this result says, because you "
                f"{said}. This estimate may be too low for you:"
            )
        else:
            opening = (
                f"The blood test this result advises matters all the more because you {said}: this estimate may be "
                "too low for you, as"
            )
        message = (
            f"{opening} the survey only counts pre-diabetes and diabetes that a doctor has found, and people who see "
            "a doctor less often are found less often, so answers like yours look healthier to the model than they "
            "are. Your estimate is therefore worked out as if you had been checked and covered"
        )
        if gaps["CholCheck"]:
            message += (
                f", and for people not checked in five years a blood test is advised from a lower estimate "
                f"({_whole_percent(rule.raised_not_checked)} instead of {_whole_percent(rule.raised)})"
            )
        message += (
            ". It can still be too low: whether a doctor ever told you that your blood pressure or cholesterol is "
            "high also depends on having been checked."
        )
        return cls(**{CARE_GAPS[name].field: gap for name, gap in gaps.items()}, message=message)

    @property
    def note(self) -> str:
        """The `care_access` result column: the short reasons, e.g. "not checked in 5 years; no coverage"."""
        return care_access_note({name: getattr(self, gap.field) for name, gap in CARE_GAPS.items()})


@dataclass(frozen=True)
class CareGap:
    """How one access answer's gap (`ml.schema.CARE_ACCESS`) is told: its `CareAccess` field, the few words of the
    `care_access` result column, and the reason in `CareAccess.message` ("because you ...")."""

    field: str
    words: str
    reason: str


#: Each access answer's gap, by `ml.schema.CARE_ACCESS` name.
CARE_GAPS: Mapping[str, CareGap] = MappingProxyType(
    {
        "CholCheck": CareGap(
            "not_checked", "not checked in 5 years", "have not had your cholesterol checked in the past five years"
        ),
        "AnyHealthcare": CareGap("no_coverage", "no coverage", "have no health care coverage"),
        "NoDocbcCost": CareGap(
            "cost_barrier", "cost kept from a doctor", "could not see a doctor because of the cost in the past year"
        ),
    }
)


def care_gaps(row: Sequence[float]) -> dict[str, bool]:
    """Which access answers (`CARE_ACCESS`) put this row outside the care system, by name."""
    return {name: bool(row[FEATURE_NAMES.index(name)] != value) for name, value in CARE_ACCESS.items()}


def care_access_note(gaps: Mapping[str, bool]) -> str:
    """The reasons a person is outside the care system, in `CARE_ACCESS` order, joined by "; "; empty when in care."""
    return "; ".join(CARE_GAPS[name].words for name in CARE_ACCESS if gaps[name])


#: The US Preventive Services Task Force (2021) advises screening adults aged 35 to 70 with overweight or obesity.
#: Its ages as `ml.schema` Age bands: 4 (35-39) to 10 (65-69); band 11 (70-74) is left out, as mostly over 70.
GUIDELINE_AGE_BANDS = range(4, 11)
#: ... and its weight: BMI 25 or more.
GUIDELINE_MIN_BMI = 25.0


def guideline_advises_test(row: Sequence[float]) -> bool:
    """Whether the USPSTF guideline advises this person a blood test whatever the screen says: age and weight."""
    age, bmi = row[FEATURE_NAMES.index("Age")], row[FEATURE_NAMES.index("BMI")]
    return int(age) in GUIDELINE_AGE_BANDS and bmi >= GUIDELINE_MIN_BMI


def _whole_percent(share: float) -> str:
    return f"{share:.0%}"


class Screening(BaseModel):
    """What a screening says first: the chance of pre-diabetes or diabetes, against the survey's average.

    Computed from the answers with every access-to-care answer read as "in care" (`care_access` says so when that
    changed anything): no answer about access to care can lower it.
    """

    model_config = ConfigDict(frozen=True)

    risk: float = Field(ge=0.0, le=1.0, description="p(prediabetic) + p(diabetic), calibrated, of the in-care answers.")
    average: float = Field(
        ge=0.0, le=1.0, description="Share of adults with pre-diabetes or diabetes in the survey the model learnt from."
    )
    ratio: float = Field(ge=0.0, description="risk / average.")
    level: ScreeningLevel = Field(description="`lower`, `raised` or `high`, from `thresholds`.")
    thresholds: ScreeningThresholds = Field(
        description="Chosen on the validation fold: `raised` is the highest threshold at which the model finds at "
        "least as many of the people with pre-diabetes or diabetes, and of the people with pre-diabetes, as the ADA "
        "risk test at 5 points (lower for people not checked in five years); `high` the lowest at which at least "
        "half of the people at or above it are affected."
    )
    affected_at_level: float | None = Field(
        ge=0.0,
        le=1.0,
        description="Of the people of the model's test split given this level, the share who had pre-diabetes or "
        "diabetes (a doctor's diagnosis); null when none was.",
    )
    guideline_test: bool = Field(
        description="True when the US Preventive Services Task Force (2021) advises this person a blood test "
        "whatever the level: aged 35 to 70 (Age bands 35-39 to 65-69) with a BMI of 25 or more."
    )
    prediabetes: PrediabetesChance
    care_access: CareAccess | None = Field(
        default=None, description="Present when an answer says the person is outside the care system."
    )

    @classmethod
    def of(cls, probabilities: Sequence[float], rule: ScreeningRule, row: Sequence[float]) -> Screening:
        """`probabilities`: calibrated, of `row` with its access answers read as "in care" (`Predictions`'s
        `screening_probabilities`); `row`: the answers as given."""
        risk = min(max(1.0 - float(probabilities[0]), 0.0), 1.0)
        prediabetes = float(probabilities[1])
        gaps = care_gaps(row)
        not_checked = gaps["CholCheck"]
        level = rule.level(risk, not_checked)
        care = CareAccess.of(gaps, rule, level)
        return cls(
            risk=risk,
            average=rule.average,
            ratio=_ratio(risk, rule.average),
            level=level,
            thresholds=ScreeningThresholds(raised=rule.raised_for(not_checked), high=rule.high),
            affected_at_level=rule.test_levels[level].affected,
            guideline_test=guideline_advises_test(row),
            prediabetes=PrediabetesChance(
                risk=prediabetes,
                average=rule.prediabetes_average,
                ratio=_ratio(prediabetes, rule.prediabetes_average),
            ),
            care_access=care,
        )


def _ratio(risk: float, average: float) -> float:
    return risk / average if average > 0 else 0.0


#: What every predictions CSV adds after the user's own columns, `python -m ml.predict` and the UI's download alike.
#: `prediction,proba_0,proba_1,proba_2` come first and never change: other tools read them. New columns go at the end.
#: `care_access` names why the person is outside the care system (empty when in care): then a blood test is worth
#: having whatever `risk_level` says, and the class and its probabilities (of the answers as given) may be too low.
RESULT_COLUMNS = (
    "prediction",
    *(f"proba_{c.id}" for c in CLASSES),
    "risk",
    "risk_level",
    "model_version",
    "care_access",
)


def clashing_columns(columns: Iterable[str]) -> list[str]:
    """The user's columns a result column would overwrite: both writers refuse them rather than replace them."""
    return [name for name in columns if name in RESULT_COLUMNS]


class PredictionResponse(BaseModel):
    """The answer for one record: the screening first, then the class and its probabilities."""

    screening: Screening
    prediction: int = Field(
        ge=0,
        le=N_CLASSES - 1,
        description="Class id chosen by the model's decision rule (tuned for weighted F1): 0 healthy, 1 pre-diabetic, "
        "2 diabetic. For scoring and automation; tell a person the `screening` first.",
    )
    name: str = Field(description="Stable machine name of the class.", examples=[CLASSES[0].name])
    label: str = Field(
        description="Human label of the class, for the answers as given (like `prediction` and `probabilities`): "
        "for a person outside the care system it can say 'No diabetes' beside a `high` screening. Tell a person the "
        "`screening`, not this label.",
        examples=[CLASSES[0].label],
    )
    probabilities: Probabilities = Field(
        description="The model's calibrated class probabilities for the answers as given (for a person outside the "
        'care system they can be lower than the `screening`\'s, which reads the access answers as "in care").'
    )
    model_version: str = Field(description="Version of the model that answered (see GET /model).")
    synthetic: bool = Field(
        description="True when the model was trained on synthetic data: then the answer says nothing about anyone."
    )
    explanation: list[Contribution] | None = Field(
        default=None,
        description="The answers with the largest shares of the screening estimate p(pre-diabetes) + p(diabetes), "
        "largest first; only with ?explain=true.",
    )

    @classmethod
    def of(
        cls,
        class_id: int,
        probabilities: Sequence[float],
        screening: Screening,
        *,
        model_version: str,
        synthetic: bool,
        explanation: list[Contribution] | None = None,
    ) -> PredictionResponse:
        """`probabilities`: of the answers as given; `screening`: `Screening.of` the same person."""
        predicted = CLASSES[class_id]
        return cls(
            screening=screening,
            prediction=predicted.id,
            name=predicted.name,
            label=predicted.label,
            probabilities=Probabilities.of(probabilities),
            model_version=model_version,
            synthetic=synthetic,
            explanation=explanation,
        )

    def result_row(self) -> tuple[int | float | str, ...]:
        """This answer as one row of `RESULT_COLUMNS`."""
        screening = self.screening
        return (
            self.prediction,
            *self.probabilities.ordered(),
            screening.risk,
            screening.level.value,
            self.model_version,
            "" if screening.care_access is None else screening.care_access.note,
        )


def responses(
    classes: Iterable[int],
    probabilities: Iterable[Sequence[float]],
    screening_probabilities: Iterable[Sequence[float]],
    rows: Iterable[Sequence[float]],
    manifest: Manifest,
    explanations: Iterable[list[Contribution] | None] | None = None,
) -> list[PredictionResponse]:
    """The answer to each row, from the Predictor's arrays: the one place predictions become responses (the service's
    routes and the batch paths' result columns both use it), with the model's version and synthetic flag."""
    answered = zip(classes, probabilities, screening_probabilities, rows, strict=True)
    explained = repeat(None) if explanations is None else iter(explanations)
    return [
        PredictionResponse.of(
            int(class_id),
            proba,
            Screening.of(screened, manifest.screening, row),
            model_version=manifest.model_version,
            synthetic=manifest.data.synthetic,
            explanation=explanation,
        )
        for (class_id, proba, screened, row), explanation in zip(answered, explained, strict=False)
    ]


class BatchResponse(BaseModel):
    """Answers for every record of a batch, in input order."""

    predictions: list[PredictionResponse]
    model_version: str


class FieldError(BaseModel):
    """What is wrong with one part of the request."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(
        description="Column name, or `body`, `record`, `records`, `query.<name>`, `path`, `model`, `server`."
    )
    reason: str = Field(description="Why it was refused, and what is accepted.")
    index: int | None = Field(default=None, description="Position of the record in a batch.")


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape; it never carries a stack trace."""

    error: str = Field(description="Machine-readable error code, e.g. invalid_input, model_loading.")
    reason: str = Field(description="Human-readable summary.")
    errors: list[FieldError] = Field(description="Each problem with its field (and record index in a batch).")
    request_id: str = Field(description="Quote it when reporting a problem; it is in the logs too.")


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyResponse(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str
    synthetic: bool = Field(description="True when the served model was trained on synthetic data.")


class TrainingData(BaseModel):
    """What a caller may know of the training data: how much there was, and whether it was real."""

    rows: int = Field(ge=1, description="Rows of the training file (fit, validation, test split and holdout together).")
    learnt_from: int = Field(
        ge=1,
        description="Rows the model learnt from: the fit and validation folds (the test split and the promotion "
        "holdout were left out).",
    )
    synthetic: bool = Field(description="True when the rows were synthetic.")
    class_counts: dict[str, int] = Field(description="Rows of each class in the file, by class id.")


class ModelResponse(BaseModel):
    """What the served model is, how good it was on held-out data, and what the service accepts.

    Public: where the model was loaded from, the training file's name and sha256, and the library versions are for
    the operator view (`service.operator`) and the logs.
    """

    model_config = ConfigDict(populate_by_name=True)

    model_version: str
    created_at: datetime = Field(description="When the model was trained (UTC).")
    digest: str = Field(
        pattern=SHA256_PATTERN,
        description="sha256 over every file of the artifact, manifest included (what `MODEL_SHA256` pins; "
        "`LC_ALL=C sha256sum -- * | sha256sum` in the model folder).",
    )
    metrics: Metrics = Field(
        description="Test metrics, and the metrics on the validation fold the rule was tuned on (optimistic)."
    )
    decision_rule: DecisionRule
    calibration: Calibration
    synthetic: bool = Field(description="True when the model was trained on synthetic data.")
    screening: ScreeningRule = Field(description="The screening levels' thresholds and how they did on test rows.")
    data: TrainingData = Field(description="How many rows the model learnt from, by class, and whether they were real.")
    schema_: dict[str, Any] = Field(alias="schema", description="Features and classes, as in ml.schema.")
    batch_limit: int = Field(description="Most records one POST /predict/batch accepts.")
