"""Explanations in the units the API names: each answer's share of this estimate of the screening risk, on its
log-odds scale (shares, not what-ifs: changing one answer can move the estimate by another amount).

The screening risk is r = p(pre-diabetes) + p(diabetes), the figure the result screen leads with. With calibrated
logits z = raw / T + b and p = softmax(z), logit(r) = log(exp z1 + exp z2) - z0, whose gradient in z is
(-1, p1 / r, p2 / r). TreeSHAP splits each raw score exactly into per-feature parts; feature j moves the calibrated
logits by phi_j = (phi_0j, phi_1j, phi_2j) / T, so its first-order effect on logit(r) is

    contribution_j = (p1 / r) phi_1j + (p2 / r) phi_2j - phi_0j        (natural log of the odds of r)

Positive pushed the estimated risk up. "First order" is exact as phi_j shrinks: removing eps * phi_j from the logits
changes logit(r) by eps * contribution_j + O(eps^2) (`tests/ml/test_inference.py` checks it by finite differences).
"""

from __future__ import annotations

import numpy as np


def risk_log_odds_contributions(shap: np.ndarray, probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Per-feature effects on logit(r), shape (n, n_features).

    `shap`: TreeSHAP values of the raw scores, shape (n, 3, n_features) (LightGBM's `pred_contrib` without its
    bias column); `probabilities`: the calibrated probabilities, shape (n, 3); `temperature`: the calibration's.
    """
    risk = probabilities[:, 1] + probabilities[:, 2]
    # Every calibrated risk is > 0 (softmax); guard the division only against underflow in extreme rows.
    risk = np.maximum(risk, np.finfo(np.float64).tiny)
    gradient = np.stack([-np.ones_like(risk), probabilities[:, 1] / risk, probabilities[:, 2] / risk], axis=1)
    contributions: np.ndarray = np.einsum("nk,nkj->nj", gradient, shap) / temperature
    return contributions
