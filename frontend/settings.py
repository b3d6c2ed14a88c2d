"""The UI's settings, from environment variables; `API_URL` is the only one without a default."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where the prediction service is and how long to wait for it.

    `API_URL` is read as is; the optional settings carry the `UI_` prefix (`UI_TIMEOUT_SECONDS`, ...).
    """

    model_config = SettingsConfigDict(env_prefix="UI_", frozen=True, extra="ignore")

    api_url: AnyHttpUrl = Field(
        validation_alias="API_URL", description="Base URL of the prediction service, e.g. http://127.0.0.1:8000."
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="How long to wait for one answer before telling the user."
    )
    connect_timeout_seconds: float = Field(
        default=3.0, gt=0, le=60, description="How long to wait for the service to accept a connection."
    )
    batch_max_rows: int = Field(default=100_000, ge=1, description="Largest CSV file, in rows, the batch tab accepts.")

    @property
    def base_url(self) -> str:
        return str(self.api_url).rstrip("/")
