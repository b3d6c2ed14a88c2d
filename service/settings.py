"""The service's settings: one class, read from environment variables once at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.contract import DEFAULT_BATCH_LIMIT, MAX_BATCH_LIMIT
from ml.inference.artifact import DEFAULT_MODEL_DIR
from ml.manifest import SHA256_PATTERN


class Settings(BaseSettings):
    """Every knob of the service. `MODEL_URI` and `MODEL_SHA256` are read as is; the others carry `SERVICE_`."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", frozen=True, extra="ignore")

    model_uri: str = Field(
        default=str(DEFAULT_MODEL_DIR),
        validation_alias="MODEL_URI",
        min_length=1,
        description="Model artifact to serve: a directory, s3://bucket/prefix or models:/name@alias (needs MLflow).",
    )
    model_sha256: str | None = Field(
        default=None,
        validation_alias="MODEL_SHA256",
        pattern=SHA256_PATTERN,
        description="Digest the model must have (64 lowercase hex, as `ml.train` prints it); any other artifact is "
        "refused before it is parsed and `/ready` says why. Unset: any verified artifact is served.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed to call the API from a browser, as JSON (e.g. ["http://localhost:8501"]); '
        "empty (the default) turns CORS off.",
    )
    batch_limit: int = Field(
        default=DEFAULT_BATCH_LIMIT, ge=1, le=MAX_BATCH_LIMIT, description="Most records one /predict/batch accepts."
    )
    body_limit_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body, in bytes; larger ones are refused with 413 before they are parsed.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=60,
        description="How long a connection may take to send a request's head (from its first byte, or from the "
        "connection's start); past it, 408 and the connection closed. Needs `--http "
        "service.http_protocol:HttpProtocol`, as the image, `make serve` and the tests start uvicorn.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=300,
        description="How long a request's body may take to arrive once its head has; past it, 408.",
    )
    explain_top_k: int = Field(default=5, ge=1, le=21, description="Features listed in an explanation.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of the JSON logs on standard output."
    )
    access_log: bool = Field(default=True, description="Log one JSON line per request.")
    operator_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for `GET /operator/model` (where the model came from, what it was trained on and "
        "with, why it is not loaded); unset (the default), that view does not exist and those details are only in "
        "the logs.",
    )
    docs_enabled: bool = Field(
        default=True,
        description="Serve `/docs` (Swagger UI, from the service itself) and `/openapi.json`; the deployed stacks "
        "turn them off unless `publicApiDocs` is set.",
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
