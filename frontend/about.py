"""What the page says about the model, in plain words, from the service's `GET /model` (the model's manifest).

Nothing here is hard-coded about the data: a model trained on synthetic rows says so on every screen.
"""

from __future__ import annotations

from ml.contract import ModelResponse

INTRO_UNKNOWN = (
    "Answer a few questions about your health and habits. A statistical model estimates your chance of having "
    "pre-diabetes or diabetes, compared with the average adult."
)
SYNTHETIC_INTRO = (
    "**This demo runs a model trained on made-up (synthetic) data.** Its answers are examples only and say nothing "
    "about anyone's health. Train it on the real survey file to get real estimates (see the README)."
)


def intro(info: ModelResponse | None) -> str:
    """The page's first paragraph; `info` is None while the service cannot be asked."""
    if info is None:
        return INTRO_UNKNOWN
    if info.synthetic:
        return SYNTHETIC_INTRO
    return (
        "Answer a few questions about your health and habits. A model that learnt from the answers of "
        f"{info.data.learnt_from:,} US adults to the CDC's health survey (BRFSS 2015) estimates your chance of having "
        "pre-diabetes or diabetes, compared with the average adult in that survey."
    )


def learnt_from(info: ModelResponse) -> str:
    """The sidebar's line: the rows the model learnt from, not the whole file (its test rows are counted apart)."""
    return f"Learnt from {info.data.learnt_from:,} answers to the CDC's 2015 health survey (BRFSS)."


def in_ten(share: float) -> str:
    """A share as "about 3 in 10" (a reader's unit), "fewer than 1 in 10" below 5%."""
    tenths = round(share * 10)
    return "fewer than 1 in 10" if tenths == 0 else f"about {tenths} in 10"


def track_record(info: ModelResponse) -> list[str]:
    """How the screening did on people the model never saw in training, one plain sentence each."""
    test = info.screening.test
    return [
        f"Tested on {test.rows:,} people it never saw in training.",
        f"It gives a raised or high result to {round(test.flagged * 100)}% of them; {in_ten(test.precision)} of "
        "those have pre-diabetes or diabetes. A raised result means a blood test is worth having, not that you are "
        "ill.",
        f"It gives a raised or high result to {in_ten(test.sensitivity_diabetes)} of the people who have diabetes, "
        f"and to {in_ten(test.sensitivity)} of those who have pre-diabetes or diabetes.",
    ]
