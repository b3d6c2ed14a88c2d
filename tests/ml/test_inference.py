"""The artifact and the Predictor: integrity checks, probabilities, explanations, behaviour, and the predict CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml import predict as predict_cli
from ml.contract import RESULT_COLUMNS, top_contributions
from ml.inference.artifact import MANIFEST_FILE, MODEL_FILE, ArtifactError
from ml.inference.digest import artifact_digest
from ml.inference.loader import load_artifact, read_folder
from ml.inference.postprocess import calibrate, decide
from ml.inference.predictor import Predictor
from ml.inference.screening import access_columns, in_care
from ml.manifest import DecisionRule, Manifest, ScreeningLevel
from ml.schema import FEATURE_NAMES, N_CLASSES, TARGET
from ml.training.data import features_matrix, read_data_file
from ml.training.synthetic_data import make_synthetic, write_synthetic
from ml.training.tuning import weighted_f1
from tests.damaged_models import first_leaf_value, rewrite_model_text
from tests.servers import ROOT


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    return Predictor.load(trained_model_dir)


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return features_matrix(make_synthetic(3_000, seed=21))


def _edit_manifest(directory: Path, **changes: object) -> None:
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest.update(changes)
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_tampered_model_file_is_refused(model_copy: Path) -> None:
    with (model_copy / MODEL_FILE).open("a") as handle:
        handle.write("\n")
    with pytest.raises(ArtifactError, match=r"model\.txt in .* has sha256 .* modified after training"):
        load_artifact(model_copy)


def test_manifest_with_other_feature_order_is_refused(model_copy: Path) -> None:
    _edit_manifest(model_copy, feature_names=list(reversed(FEATURE_NAMES)))
    with pytest.raises(ArtifactError, match=r"feature_names .* differs from this code's"):
        load_artifact(model_copy)


def test_other_lightgbm_major_version_is_refused(model_copy: Path) -> None:
    versions = json.loads((model_copy / MANIFEST_FILE).read_text())["versions"]
    _edit_manifest(model_copy, versions={**versions, "lightgbm": "1.0.0"})
    with pytest.raises(ArtifactError, match=r"trained with lightgbm 1\.0\.0"):
        load_artifact(model_copy)


def test_other_format_version_is_refused_before_anything_else(model_copy: Path) -> None:
    _edit_manifest(model_copy, format_version=1, calibration="not even an object")
    with pytest.raises(ArtifactError, match="format_version 1, this code reads 4"):
        load_artifact(model_copy)


def test_manifest_pointing_outside_the_artifact_is_refused(model_copy: Path) -> None:
    files = json.loads((model_copy / MANIFEST_FILE).read_text())["files"]
    _edit_manifest(model_copy, files={**files, "../escape.txt": "0" * 64})
    with pytest.raises(ArtifactError, match=r"files\.\.\./escape\.txt"):
        load_artifact(model_copy)


def test_missing_files_are_explained(model_copy: Path, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="does not exist; train one"):
        load_artifact(tmp_path / "nowhere")
    (model_copy / "subgroup_metrics.csv").unlink()
    with pytest.raises(ArtifactError, match=r"lacks subgroup_metrics\.csv, which its manifest lists"):
        load_artifact(model_copy)
    (model_copy / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_artifact(model_copy)
    (model_copy / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        load_artifact(model_copy)


def test_manifest_is_typed_and_records_what_reproduces_the_model(trained_model_dir: Path) -> None:
    manifest = Manifest.model_validate_json((trained_model_dir / MANIFEST_FILE).read_text())
    assert manifest.feature_names == FEATURE_NAMES
    assert manifest.data.synthetic is True
    assert manifest.split.test_split_id
    assert manifest.training.config["seed"] == 42
    assert set(manifest.files) >= {MODEL_FILE, "confusion_matrix.png", "ada_roc.png", "subgroup_metrics.csv"}
    assert manifest.calibration.method == "bias_corrected_temperature_scaling"
    assert {"lightgbm", "numpy", "python"} <= set(manifest.versions)
    compared = manifest.imbalance_strategy.compared
    assert set(compared) == {"none+argmax", "none+tuned_rule", "class_weights+argmax", "class_weights+tuned_rule"}
    assert manifest.imbalance_strategy.chosen in compared
    # What training wrote reads back to the same model (the file is exactly the typed manifest).
    assert Manifest.model_validate_json(manifest.to_json()) == manifest


def test_digest_covers_every_file_and_matches_sha256sum(trained_model_dir: Path, predictor: Predictor) -> None:
    import hashlib
    import subprocess

    files = read_folder(trained_model_dir)
    assert predictor.digest == artifact_digest(files)
    listing = subprocess.run(
        "LC_ALL=C sha256sum -- *", shell=True, cwd=trained_model_dir, capture_output=True, check=True
    ).stdout
    assert predictor.digest == hashlib.sha256(listing).hexdigest()
    assert artifact_digest({**files, MANIFEST_FILE: files[MANIFEST_FILE] + b" "}) != predictor.digest


def test_probabilities_are_a_distribution_and_decisions_follow_the_rule(predictor: Predictor, rows: np.ndarray) -> None:
    predictions = predictor.predict(rows)
    proba = predictions.probabilities
    assert proba.shape == (len(rows), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    weights = np.array(predictor.manifest.decision_rule.class_weights)
    np.testing.assert_array_equal(predictions.classes, np.argmax(proba * weights, axis=1))
    raw = predictor._booster.raw_scores(rows)
    np.testing.assert_allclose(proba, calibrate(raw, predictor.manifest.calibration), rtol=1e-12)
    np.testing.assert_array_equal(predictions.classes, decide(proba, predictor.manifest.decision_rule))


def test_one_row_alone_answers_as_inside_a_batch(predictor: Predictor, rows: np.ndarray) -> None:
    """The single-row fast path and LightGBM's own batch prediction agree bit for bit, row by row, the screening
    (of the in-care answers) included: a person's answer does not depend on how it was asked for (review 22, F1:
    to rounding, 8.6% of the survey's people got other last digits from `/predict` than from a batch)."""
    batch = predictor.predict(rows)
    for i in range(len(rows)):
        one = predictor.predict(rows[i])
        np.testing.assert_array_equal(one.probabilities, batch.probabilities[i : i + 1])
        np.testing.assert_array_equal(one.screening_probabilities, batch.screening_probabilities[i : i + 1])
        assert one.classes[0] == batch.classes[i]


def test_one_row_s_class_is_decided_on_the_answers_as_given(
    predictor: Predictor, rows: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 20, M1: one row has its own path (`Predictor._predict_one`); its class is the decision rule's on the
    probabilities of the answers as given, never on the screening's (the in-care answers). A person outside care
    whose two rows are given raw scores (so that the test does not depend on how much the model reads the access
    answers), under a rule chosen so that the two readings give different classes."""
    raw = np.array([[0.0, -1.0, 0.5], [0.0, 0.2, 1.5]])  # as given, then in care
    given, screening = calibrate(raw, predictor.manifest.calibration)
    ratio = screening / given
    a, b = int(np.argmax(ratio)), int(np.argmin(ratio))
    weights = np.full(N_CLASSES, 1e-9)  # given: b wins; screening: a (sqrt(ratio_a * ratio_b) > ratio_b)
    weights[a], weights[b] = np.sqrt(ratio[b] / ratio[a]) / given[a], 1 / given[b]
    rule = DecisionRule.from_weights(tuple(float(w) for w in weights / weights.max()))
    manifest = predictor.manifest.model_copy(update={"decision_rule": rule})
    ruled = Predictor(dataclasses.replace(predictor._artifact, manifest=manifest))
    monkeypatch.setattr(ruled, "_score_rows_alone", lambda pair: raw[: len(pair)].tolist())
    outside_care = rows[in_care(rows)[1]][0]
    one = ruled.predict(outside_care)
    np.testing.assert_allclose(one.screening_probabilities[0], screening)  # the in-care row's scores
    assert decide(one.screening_probabilities, rule)[0] == a != b  # the readings differ under this rule
    assert one.classes[0] == b


def test_screening_probabilities_are_those_of_the_in_care_answers(predictor: Predictor, rows: np.ndarray) -> None:
    """Scored and calibrated together with the answers as given (`Predictor.predict`), the in-care copies get the
    probabilities they get alone; rows in care keep their own, and a batch all in care shares one array."""
    sample = rows[:200]
    screened, changed = in_care(sample)
    assert 0 < changed.sum() < len(sample)  # both kinds of people
    predictions = predictor.predict(sample)
    alone = predictor.predict(screened)
    np.testing.assert_allclose(predictions.screening_probabilities, alone.probabilities, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(predictions.screening_probabilities[~changed], predictions.probabilities[~changed])
    for i in np.flatnonzero(changed)[:20]:  # one row alone: two rows of scores, one calibration
        one = predictor.predict(sample[i])
        np.testing.assert_allclose(one.screening_probabilities[0], alone.probabilities[i], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(one.probabilities[0], predictions.probabilities[i], rtol=1e-12, atol=1e-15)
    in_care_only = predictor.predict(sample[~changed])
    assert in_care_only.screening_probabilities is in_care_only.probabilities
    one_in_care = predictor.predict(sample[~changed][0])
    assert one_in_care.screening_probabilities is one_in_care.probabilities


def test_wrong_row_width_is_a_clear_error(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match=f"expected rows of {len(FEATURE_NAMES)} features"):
        predictor.predict(np.zeros((2, len(FEATURE_NAMES) - 1)))
    with pytest.raises(ValueError, match=f"expected rows of {len(FEATURE_NAMES)} features"):
        predictor.predict(np.zeros(len(FEATURE_NAMES) - 1))


def _logit_risk(logits: np.ndarray) -> np.ndarray:
    """logit(r), r = p(pre-diabetes) + p(diabetes) = softmax(logits)[1] + softmax(logits)[2], computed stably."""
    return np.logaddexp(logits[..., 1], logits[..., 2]) - logits[..., 0]


def test_contributions_are_first_order_shares_of_the_screening_estimates_log_odds(
    trained_model_dir: Path, predictor: Predictor, rows: np.ndarray
) -> None:
    """The documented property, checked by finite differences on rows of the synthetic model: removing eps times an
    answer's TreeSHAP share (of the three calibrated logits of the in-care answers, which the screening risk is
    computed from) changes logit(r) by eps times its contribution; the access answers have none."""
    booster = load_artifact(trained_model_dir).booster
    calibration = predictor.manifest.calibration
    sample = rows[:40]
    screened, changed = in_care(sample)
    assert changed.any()  # the sample has people outside the care system
    raw = booster.raw_scores(screened)
    shap = booster.contributions(screened).reshape(len(sample), 3, len(FEATURE_NAMES) + 1)
    np.testing.assert_allclose(shap.sum(axis=2), raw, rtol=1e-6, atol=1e-6)  # TreeSHAP is exact
    logits = raw / calibration.temperature + np.asarray(calibration.bias)
    phi = shap[:, :, :-1] / calibration.temperature  # each feature's share of the calibrated logits
    predictions = predictor.predict(sample, explain=True)
    assert predictions.contributions is not None
    for eps in (1e-3, 1e-5):
        moved = logits[:, :, None] - eps * phi  # (rows, classes, features)
        finite = (_logit_risk(logits)[:, None] - _logit_risk(np.moveaxis(moved, 1, -1))) / eps
        finite[:, access_columns()] = 0.0
        np.testing.assert_allclose(predictions.contributions, finite, rtol=0, atol=50 * eps)
    # One row alone is explained as inside a batch, and the top factor is the largest effect.
    single = predictor.predict(sample[3], explain=True).contributions
    assert single is not None
    np.testing.assert_allclose(single[0], predictions.contributions[3], rtol=1e-12)
    assert top_contributions(sample[3], single[0], 1)[0].contribution == single[0][np.abs(single[0]).argmax()]


def test_pinned_digest_refuses_any_other_artifact_before_parsing_it(model_copy: Path, predictor: Predictor) -> None:
    assert Predictor.load(model_copy, expected_sha256=predictor.digest).digest == predictor.digest
    (model_copy / MANIFEST_FILE).write_text("{not json")  # would fail as "not valid JSON" if it were parsed
    with pytest.raises(ArtifactError, match=f"has digest [0-9a-f]{{64}}, but the pinned digest is {predictor.digest}"):
        Predictor.load(model_copy, expected_sha256=predictor.digest)


def test_predict_cli_checks_the_pinned_digest(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_synthetic(tmp_path / "input.csv", 20, seed=5)
    common = ["--model", str(trained_model_dir), "--data", str(data), "--output", str(tmp_path / "out.csv")]
    assert predict_cli.main([*common, "--expect-sha256", predictor.digest]) == 0
    other = "0" * 64
    assert predict_cli.main([*common, "--expect-sha256", other]) == 2
    assert f"the pinned digest is {other}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        predict_cli.main([*common, "--expect-sha256", predictor.digest.upper()])
    assert "expected 64 lowercase hex digits" in capsys.readouterr().err


@pytest.mark.parametrize(("feature", "low", "high"), [("GenHlth", 1, 5), ("HighBP", 0, 1), ("Age", 2, 11)])
def test_risk_factors_do_not_lower_the_probability_of_diabetes(
    predictor: Predictor, rows: np.ndarray, feature: str, low: int, high: int
) -> None:
    column = FEATURE_NAMES.index(feature)
    lower, higher = rows.copy(), rows.copy()
    lower[:, column], higher[:, column] = low, high
    p_high = predictor.predict(higher).probabilities[:, 2].mean()
    assert p_high > predictor.predict(lower).probabilities[:, 2].mean()


def test_model_beats_the_majority_baseline(predictor: Predictor) -> None:
    frame = make_synthetic(4_000, seed=99)
    y = frame[TARGET].to_numpy()
    predicted = predictor.predict(features_matrix(frame)).classes
    assert weighted_f1(y, predicted) > weighted_f1(y, np.zeros_like(y)) + 0.02


def test_predict_cli_round_trips_in_input_order(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_synthetic(tmp_path / "input.csv", 500, seed=5)
    out = tmp_path / "out" / "predictions.csv"
    out.parent.mkdir()  # the command does not create a missing folder (a typo would make a tree)
    code = predict_cli.main(["--model", str(trained_model_dir), "--data", str(data), "--output", str(out)])
    assert code == 0, capsys.readouterr().err
    result = pd.read_csv(out)
    # The input's columns (Diabetes_012 included, ignored for prediction), then the result columns.
    assert list(result.columns) == [TARGET, *FEATURE_NAMES, *RESULT_COLUMNS]
    assert list(RESULT_COLUMNS[:4]) == ["prediction", "proba_0", "proba_1", "proba_2"]
    expected = predictor.predict(features_matrix(read_data_file(data, target="ignore")))
    assert len(result) == 500
    np.testing.assert_allclose(result[["proba_0", "proba_1", "proba_2"]].to_numpy(), expected.probabilities, atol=2e-6)
    np.testing.assert_array_equal(result["prediction"].to_numpy(), expected.classes)
    np.testing.assert_allclose(result["risk"], 1 - expected.screening_probabilities[:, 0], atol=2e-6)
    assert set(result["risk_level"]) <= {level.value for level in ScreeningLevel}
    assert set(result["model_version"]) == {predictor.version}


def test_predict_cli_keeps_an_id_column_and_refuses_a_clashing_one(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = make_synthetic(20, seed=3).drop(columns=[TARGET])
    frame.insert(0, "patient_id", [f"00{i}" for i in range(20)])
    data = tmp_path / "with-id.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out.csv"
    assert predict_cli.main(["--model", str(trained_model_dir), "--data", str(data), "--output", str(out)]) == 0
    written = pd.read_csv(out, dtype={"patient_id": str})
    assert list(written["patient_id"]) == [f"00{i}" for i in range(20)]  # verbatim, leading zeros included

    frame.rename(columns={"patient_id": "risk"}).to_csv(data, index=False)
    assert predict_cli.main(["--model", str(trained_model_dir), "--data", str(data), "--output", str(out)]) == 2
    assert "column(s) risk, which the output writes" in capsys.readouterr().err


def test_predict_cli_rejects_bad_rows_naming_the_column(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = make_synthetic(50, seed=1).drop(columns=[TARGET])
    frame["Age"] = frame["Age"].astype(float)
    frame.loc[7, "Age"] = 14
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "never.csv"
    code = predict_cli.main(["--model", str(trained_model_dir), "--data", str(bad), "--output", str(out)])
    assert code != 0
    err = capsys.readouterr().err
    assert "Age" in err
    assert "14" in err
    assert not out.exists()


def test_predict_cli_explains_a_model_file_lightgbm_cannot_parse(model_copy: Path, tmp_path: Path) -> None:
    """The issue's file (a leaf value rewritten as "9.5", the manifest resealed) made the command abort with exit
    134 ("terminate called"); now it exits 2 with the reason, and no traceback."""
    rewrite_model_text(model_copy, first_leaf_value)
    data = write_synthetic(tmp_path / "input.csv", 20, seed=5)
    out = tmp_path / "out.csv"
    command = ["-m", "ml.predict", "--model", str(model_copy), "--data", str(data), "--output", str(out)]
    process = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert process.returncode == 2, (process.returncode, process.stderr[-3000:])
    assert f"error: model.txt of {model_copy} cannot be loaded: line 12: tree_sizes puts tree 0 here" in process.stderr
    assert "Traceback" not in process.stderr
    assert "[LightGBM]" not in process.stderr
    assert not out.exists()
