"""Request and response models, generated from `ml.schema` so the API can never drift from the model's features.

Integer-coded features are validated as JSON numbers that must be whole (1 and 1.0 pass, 1.5, "1" and true do
not): JSON Schema's `integer` means exactly that, and the survey file itself stores every code as `1.0`. They are
parsed as floats because the model reads float64 rows; the OpenAPI schema still says `integer`. All checks run
inside pydantic-core, which keeps validating one record at a few microseconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from ml.schema import CLASSES, DEFAULT_RECORD, FEATURES, N_CLASSES, Feature

#: Error type of a near-integer in a whole-number field; its context lists the fields.
WHOLE_NUMBER_ERROR = "whole_number"


def _codes_text(feature: Feature) -> str:
    if codes := feature.code_texts():
        return f"Codes: {', '.join(codes)}."
    return f"Allowed: {feature.minimum} to {feature.maximum} ({feature.unit or 'value'})."


def _as_integer(schema: dict[str, Any]) -> None:
    """Publish whole-number fields as JSON Schema integers (their float parsing is an implementation detail)."""
    schema["type"] = "integer"
    schema.pop("multipleOf", None)


def _field(feature: Feature) -> Any:
    """The annotated type of one feature: its kind decides integer or number, its range the bounds."""
    common: dict[str, Any] = {
        "ge": feature.minimum,
        "le": feature.maximum,
        "strict": True,
        "allow_inf_nan": False,
        "description": f"{feature.description} {_codes_text(feature)}",
        "examples": [feature.default],
    }
    if feature.integer:
        extra: dict[str, Any] = {"x-kind": feature.kind.value}
        if feature.labels:
            extra["x-labels"] = {str(code): label for code, label in feature.labels.items()}

        def schema_extra(schema: dict[str, Any]) -> None:
            _as_integer(schema)
            schema.update(extra)

        return Annotated[float, Field(multiple_of=1, json_schema_extra=schema_extra, **common)]
    return Annotated[float, Field(json_schema_extra={"x-kind": feature.kind.value}, **common)]


_WHOLE_NUMBER_FIELDS = tuple(f.name for f in FEATURES if f.integer)


def _exactly_whole(record: BaseModel) -> BaseModel:
    """pydantic-core's `multiple_of` allows a float epsilon of slack (2.6e-42 passes as 0): refuse any fraction.

    One error names every such field in its context; `service.errors` turns it into one problem per field.
    """
    values = record.__dict__
    fractional = [name for name in _WHOLE_NUMBER_FIELDS if not values[name].is_integer()]
    if fractional:
        raise PydanticCustomError(
            WHOLE_NUMBER_ERROR, "Input should be a whole number", {"fields": ", ".join(fractional)}
        )
    return record


_record_fields: dict[str, Any] = {f.name: (_field(f), ...) for f in FEATURES}
_record_validators: dict[str, Any] = {"exactly_whole": model_validator(mode="after")(_exactly_whole)}
_record_examples: dict[str, Any] = {"examples": [dict(DEFAULT_RECORD)]}
PatientRecord: type[BaseModel] = create_model(
    "PatientRecord",
    __config__=ConfigDict(extra="forbid", frozen=True, title="PatientRecord", json_schema_extra=_record_examples),
    __doc__="One person's 21 health indicators, keyed by the survey's column names.",
    __validators__=_record_validators,
    **_record_fields,
)


def batch_request_model(limit: int) -> type[BaseModel]:
    """The /predict/batch body; the record limit is a setting, so the model is made per app."""
    examples: dict[str, Any] = {"examples": [{"records": [dict(DEFAULT_RECORD), {**DEFAULT_RECORD, "BMI": 31.5}]}]}
    fields: dict[str, Any] = {
        "records": (Annotated[list[PatientRecord], Field(min_length=1, max_length=limit)], ...)  # type: ignore[valid-type]
    }
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid", title="BatchRequest", json_schema_extra=examples),
        __doc__=f"Up to {limit:,} records, answered in order.",
        **fields,
    )


_probability_fields: dict[str, Any] = {
    f"class_{c.id}": (Annotated[float, Field(ge=0.0, le=1.0, alias=c.label, description=c.description)], ...)
    for c in CLASSES
}
Probabilities: type[BaseModel] = create_model(
    "Probabilities",
    __config__=ConfigDict(title="Probabilities", populate_by_name=True),
    __doc__="Calibrated probability of each class, keyed by the class's label; they sum to 1.",
    **_probability_fields,
)


class Contribution(BaseModel):
    """One feature's push on the predicted class's score (calibrated log-odds; positive: towards it)."""

    feature: str = Field(description="Column name of the feature.")
    value: float = Field(description="The value sent.")
    value_label: str = Field(description="Human label of the value (the code's meaning, or the number).")
    contribution: float = Field(description="TreeSHAP contribution towards the predicted class.")


class PredictionResponse(BaseModel):
    """The answer for one record."""

    prediction: int = Field(ge=0, le=N_CLASSES - 1, description="Class id: 0 healthy, 1 pre-diabetic, 2 diabetic.")
    name: str = Field(description="Machine name of the class.", examples=[CLASSES[0].name])
    label: str = Field(description="Human label of the class.", examples=[CLASSES[0].label])
    probabilities: Probabilities  # type: ignore[valid-type]
    model_version: str = Field(description="Version of the model that answered (see GET /model).")
    explanation: list[Contribution] | None = Field(
        default=None, description="Top features behind the prediction; only with ?explain=true."
    )


class BatchResponse(BaseModel):
    """Answers for every record of a batch, in input order."""

    predictions: list[PredictionResponse]
    model_version: str


class FieldError(BaseModel):
    """What is wrong with one part of the request."""

    field: str = Field(description="Column name, or `body`, `query.<name>`, `path`, `model`, `server`.")
    reason: str = Field(description="Why it was refused, and what is accepted.")
    index: int | None = Field(default=None, description="Position of the record in a batch.")


class ErrorResponse(BaseModel):
    """Every error the API returns has this shape; it never carries a stack trace."""

    error: str = Field(description="Machine-readable error code, e.g. invalid_input, model_not_ready.")
    reason: str = Field(description="Human-readable summary.")
    errors: list[FieldError] = Field(description="Each problem with its field (and record index in a batch).")
    request_id: str = Field(description="Quote it when reporting a problem; it is in the logs too.")


class HealthResponse(BaseModel):
    status: str = Field(examples=["ok"])


class ReadyResponse(BaseModel):
    status: str = Field(examples=["ready"])
    model_version: str


class ModelResponse(BaseModel):
    """What the served model is and how good it was on held-out data."""

    model_version: str
    created_at: str = Field(description="When the model was trained (UTC, ISO 8601).")
    model_uri: str = Field(description="Where the service loaded it from.")
    metrics: dict[str, Any] = Field(description="Test and validation metrics recorded at training time.")
    decision_rule: dict[str, Any]
    calibration: dict[str, Any]
    data: dict[str, Any] = Field(description="Training data fingerprint: sha256, rows, class counts, synthetic flag.")
    versions: dict[str, str] = Field(description="Library versions the model was trained with.")
    schema_: dict[str, Any] = Field(alias="schema", description="Features and classes, as in ml.schema.")
