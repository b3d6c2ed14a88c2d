"""Turning the booster's raw scores into calibrated probabilities and a decision: numpy only, used in serving.

Calibration is vector scaling (one temperature and one bias per class, fitted on the validation fold by log
loss), so it corrects both over-confidence and the prior shift that class weighting introduces. The decision
rule multiplies the calibrated probabilities by per-class weights before the argmax: a cost-sensitive rule whose
weights are tuned on the validation fold to maximise weighted F1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.schema import N_CLASSES


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    result: np.ndarray = shifted
    return result


@dataclass(frozen=True)
class Calibration:
    """p = softmax(raw / temperature + bias)."""

    temperature: float = 1.0
    bias: tuple[float, ...] = (0.0,) * N_CLASSES

    def __post_init__(self) -> None:
        if not self.temperature > 0 or len(self.bias) != N_CLASSES:
            raise ValueError(f"invalid calibration: temperature {self.temperature}, bias {self.bias}")

    def proba(self, raw: np.ndarray) -> np.ndarray:
        return softmax(raw / self.temperature + np.asarray(self.bias))

    def to_dict(self) -> dict[str, Any]:
        return {"method": "vector_scaling", "temperature": self.temperature, "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(float(data["temperature"]), tuple(float(b) for b in data["bias"]))


@dataclass(frozen=True)
class DecisionRule:
    """Predicted class = argmax(p * class_weights); weights of 1 are the plain argmax."""

    class_weights: tuple[float, ...] = (1.0,) * N_CLASSES

    def __post_init__(self) -> None:
        if len(self.class_weights) != N_CLASSES or min(self.class_weights) <= 0:
            raise ValueError(f"invalid decision rule weights {self.class_weights}")

    @property
    def is_argmax(self) -> bool:
        return len(set(self.class_weights)) == 1

    def decide(self, proba: np.ndarray) -> np.ndarray:
        decided: np.ndarray = np.argmax(proba * np.asarray(self.class_weights), axis=1)
        return decided

    def to_dict(self) -> dict[str, Any]:
        method = "argmax" if self.is_argmax else "cost_sensitive_argmax"
        return {"method": method, "class_weights": list(self.class_weights)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionRule:
        return cls(tuple(float(w) for w in data["class_weights"]))
