"""The UI's settings, from environment variables; `API_URL` is the only one without a default."""

from __future__ import annotations

import math

from pydantic import AnyHttpUrl, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Bytes one row of an upload may average: the features as the survey file writes them (`1.0`) take about 90,
#: which leaves room for a few columns of the user's own. With the row limit it sets the upload limit.
BYTES_PER_ROW = 200


def upload_limit_bytes(max_rows: int) -> int:
    """The largest upload worth reading for `max_rows` rows, in whole megabytes (MiB, as Streamlit counts them)."""
    return math.ceil(max_rows * BYTES_PER_ROW / 2**20) * 2**20


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
    batch_max_rows: int = Field(
        default=100_000,
        ge=1,
        le=1_000_000,
        description="Largest CSV file, in rows, the batch tab accepts; it also sets the largest upload (200 bytes a "
        "row: 20 MB for 100,000 rows). Start Streamlit with the same `--server.maxUploadSize`.",
    )

    @property
    def base_url(self) -> str:
        return str(self.api_url).rstrip("/")

    @property
    def upload_limit_mb(self) -> int:
        """The batch tab's upload limit in Streamlit's megabytes (MiB): what `batch_max_rows` rows can need."""
        return upload_limit_bytes(self.batch_max_rows) // 2**20
