"""Every command of the API guide runs as written against a live service, and answers what the guide shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.docs.api_guide import GUIDE, guide_server, run, shape, steps


@pytest.fixture(scope="module")
def guide_text() -> str:
    return GUIDE.read_text(encoding="utf-8")


def test_the_guide_shows_an_answer_for_each_request(guide_text: str) -> None:
    answered = [step for step in steps(guide_text) if step.answer is not None]
    assert len(answered) >= 4  # one prediction, with explanation, a batch, an error
    for step in answered:
        assert step.answer is not None
        json.loads(step.answer.body)  # each shown answer is a whole JSON document, not a fragment


def test_every_command_runs_and_answers_in_the_shape_the_guide_shows(
    guide_text: str, trained_model_dir: Path, tmp_path: Path
) -> None:
    with guide_server(guide_text, trained_model_dir, tmp_path / "server.log") as url:
        for step in steps(guide_text):
            output = run(step, url, tmp_path)
            if step.answer is None:
                continue
            live = json.loads(output)
            assert shape(live) == shape(json.loads(step.answer.body)), step.command.body


def test_explanations_are_described_as_shares_of_this_estimate_not_as_odds_to_act_on(guide_text: str) -> None:
    """A contribution is an answer's share of this estimate: "+0.3 multiplies the odds by about 1.35" invited a
    what-if reading that the explanations do not support (issue 19)."""
    from ml.contract import Contribution

    card = (GUIDE.parent / "model-card.md").read_text(encoding="utf-8")
    field = Contribution.model_fields["contribution"].description or ""
    for text in (guide_text, card, field):
        assert "multiplies the odds" not in text
        assert "shares of this estimate" in text.replace("\n", " ") or "share of this estimate" in text
    assert "not what-ifs" in " ".join(guide_text.split())  # the page wraps its lines


def test_the_guide_says_the_class_is_for_the_answers_as_given_and_the_screening_is_what_to_act_on(
    guide_text: str,
) -> None:
    """The unchecked example answers "No diabetes" beside `level: high`: the guide must say which one to act on."""
    from ml.contract import PredictionResponse

    flat = " ".join(guide_text.split())
    assert (
        "**`prediction`, `label` and `probabilities` are the model's for the answers as given; the `screening` is "
        "what to act on.**" in flat
    )
    unchecked = flat[flat.index("unchecked.json") : flat.index("## A batch")]
    assert '"label": "No diabetes"' in unchecked
    assert "wrong for this person" in unchecked
    assert "Never show this `label` to a person outside care" in unchecked
    assert "answers as given" in (PredictionResponse.model_fields["label"].description or "")


def _answer_to(guide_text: str, command: str) -> dict:
    """The answer the guide shows to the first command that contains `command`."""
    step = next(s for s in steps(guide_text) if command in s.command.body and s.answer is not None)
    assert step.answer is not None
    answer: dict = json.loads(step.answer.body)
    return answer


def test_the_unchecked_examples_words_give_the_figures_of_the_answers_it_shows(guide_text: str) -> None:
    """The paragraph under the unchecked example writes its risks by hand ("risk 60%", "31% instead of 60%"); the
    answers above it are refreshed from a model (`tests.docs.api_guide --write`): the words must follow them."""
    checked = _answer_to(guide_text, "-d @person.json")
    unchecked = _answer_to(guide_text, "-d @unchecked.json")
    risk = f"{unchecked['screening']['risk']:.0%}"
    as_given = f"{unchecked['probabilities']['prediabetic'] + unchecked['probabilities']['diabetic']:.0%}"
    flat = " ".join(guide_text.split())
    paragraph = flat[flat.index("What to act on is the `screening`") : flat.index("## A batch")]
    assert f"level `{unchecked['screening']['level']}` (risk {risk}, the same as when checked)" in paragraph
    assert f"{checked['screening']['risk']:.0%}" == risk
    assert f'checked, the same answers are labelled "{checked["label"]}"' in paragraph
    assert f'The `prediction` {unchecked["prediction"]}, `label` "{unchecked["label"]}"' in paragraph
    assert f"({as_given} instead of {risk})" in paragraph
