"""The served model's lifecycle: loading in the background, ready, or failed with a reason.

Loading runs in a worker thread after the server starts, so `/health` answers at once even while a model is
fetched from S3 or MLflow, and a missing or corrupt model leaves a running service whose `/ready` explains why
(rather than a process that exits and restarts in a loop).
"""

from __future__ import annotations

import logging
import threading
import time
from enum import StrEnum

from ml.inference.artifact import ArtifactError
from ml.inference.predictor import Predictor

logger = logging.getLogger("service.model")


class ModelStatus(StrEnum):
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class ModelState:
    """Thread-safe holder of the predictor; written once by the loader, read by every request."""

    def __init__(self, uri: str, expected_sha256: str | None = None) -> None:
        self.uri = uri
        self.expected_sha256 = expected_sha256
        self.status = ModelStatus.LOADING
        self.reason = f"the model from {uri} is still loading"
        self.predictor: Predictor | None = None
        self._done = threading.Event()

    def load(self) -> None:
        """Load and verify the artifact; never raises, records the outcome instead."""
        started = time.perf_counter()
        try:
            predictor = Predictor.load(self.uri, expected_sha256=self.expected_sha256)
        except ArtifactError as exc:
            self._fail(str(exc))
        except Exception as exc:  # any other failure must still leave a service that says why it is not ready
            logger.exception("unexpected error while loading the model", extra={"model_uri": self.uri})
            self._fail(f"cannot load the model from {self.uri}: {type(exc).__name__}: {exc}")
        else:
            self.predictor = predictor
            self.status = ModelStatus.READY
            self.reason = "ready"
            logger.info(
                "model loaded",
                extra={
                    "model_uri": self.uri,
                    "model_version": predictor.version,
                    "model_sha256": predictor.digest,
                    "pinned": self.expected_sha256 is not None,
                    "data_file": predictor.manifest.data.file,
                    "data_sha256": predictor.manifest.data.sha256,
                    "versions": predictor.manifest.versions,
                    "load_seconds": round(time.perf_counter() - started, 3),
                },
            )
        finally:
            self._done.set()

    def _fail(self, reason: str) -> None:
        self.status = ModelStatus.FAILED
        self.reason = reason
        logger.error(
            "model not loaded; /ready answers 503 until fixed", extra={"model_uri": self.uri, "reason": reason}
        )

    def wait(self, timeout: float | None = None) -> bool:
        """Block until loading finished (either way); True when it did within `timeout`."""
        return self._done.wait(timeout)
