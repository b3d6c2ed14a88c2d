"""What `ml.predict` and the loader do with a model folder an attacker prepared (issue 20, review 2): parameters
LightGBM's wrapper cannot parse, links to unreadable or never-ending files, FIFOs. Each is a clear error, never a
traceback or a hang."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest

from ml import predict as predict_cli
from ml.inference.artifact import ArtifactError, ModelFileError
from ml.inference.loader import load_artifact, read_folder
from ml.training.synthetic_data import write_synthetic
from tests.damaged_models import rewrite_model_text


def _predict(model: Path, tmp_path: Path) -> int:
    data = write_synthetic(tmp_path / "input.csv", 20, seed=5)
    return predict_cli.main(["--model", str(model), "--data", str(data), "--output", str(tmp_path / "out.csv")])


@pytest.mark.parametrize("value", ["-", "+"])
def test_parameters_lightgbm_turns_into_invalid_json_are_a_model_file_error(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    """`[learning_rate: -]` becomes invalid JSON in LightGBM's `GetLoadedParam`; its wrapper raised JSONDecodeError."""
    rewrite_model_text(model_copy, lambda text: re.sub(r"\[learning_rate: [^\]]*\]", f"[learning_rate: {value}]", text))
    with pytest.raises(ModelFileError, match=r"cannot load model\.txt of .*JSONDecodeError"):
        load_artifact(model_copy)
    assert _predict(model_copy, tmp_path) == 2
    err = capsys.readouterr().err
    assert "cannot load model.txt" in err
    assert "Traceback" not in err


def test_only_the_files_the_manifest_lists_are_read(model_copy: Path) -> None:
    (model_copy / "notes.txt").symlink_to("/proc/self/mem")  # reading it fails with EIO
    os.mkfifo(model_copy / "pipe")  # reading it would block for ever
    assert set(read_folder(model_copy)) == {p.name for p in model_copy.iterdir()} - {"notes.txt", "pipe"}
    assert load_artifact(model_copy).manifest.files


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda path: path.symlink_to("/proc/self/mem"), "a symbolic link"),
        (lambda path: path.symlink_to(path.parent / "manifest.json"), "a symbolic link"),
        (os.mkfifo, "not a regular file"),
        (lambda path: path.mkdir(), "not a regular file"),
    ],
    ids=["link to /proc/self/mem", "link inside the folder", "FIFO", "folder"],
)
def test_a_listed_file_that_is_a_link_or_not_a_regular_file_is_refused_before_it_is_read(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, reason: str
) -> None:
    target = model_copy / "subgroup_metrics.csv"
    target.unlink()
    make(target)  # type: ignore[operator]
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_artifact(model_copy)
        except BaseException as exc:
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(timeout=30)
    assert not loader.is_alive(), "the load hangs"
    (error,) = outcome
    assert isinstance(error, ArtifactError)
    assert reason in str(error)
    assert "subgroup_metrics.csv" in str(error)
    assert _predict(model_copy, tmp_path) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_a_symlinked_manifest_is_refused(model_copy: Path) -> None:
    real = model_copy.parent / "elsewhere.json"
    (model_copy / "manifest.json").rename(real)
    (model_copy / "manifest.json").symlink_to(real)
    with pytest.raises(ArtifactError, match=r"manifest\.json: a symbolic link"):
        load_artifact(model_copy)
