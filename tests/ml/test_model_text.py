"""A model.txt LightGBM cannot parse (or would parse into a tree that reads out of bounds) is refused with the line
and the reason, by every caller of the loader; and no bytes at all can crash the process that loads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml.inference.artifact import MODEL_FILE, ArtifactError, ModelFileError
from ml.inference.loader import load_artifact
from ml.inference.model_text import MAX_TREE_DEPTH, check_model_text
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES, N_CLASSES
from tests.damaged_models import chain_tree, first_leaf_value, rewrite_model_text, tree_field
from tests.servers import ROOT


def _tree0(model_dir: Path, field: str) -> list[str]:
    """Tree 0's values of `field`, so an edit can keep their count and break only what a test targets."""
    text = (model_dir / MODEL_FILE).read_text()
    start = text.index(f"{field}=", text.index("Tree=0\n")) + len(field) + 1
    return text[start : text.index("\n", start)].split(" ")


def test_the_model_training_writes_passes_unchanged(trained_model_dir: Path) -> None:
    raw = (trained_model_dir / MODEL_FILE).read_bytes()
    assert check_model_text(raw, len(FEATURE_NAMES), N_CLASSES) == raw.decode()


def test_a_leaf_value_changed_in_length_is_refused_with_the_line(model_copy: Path) -> None:
    """The issue's file: one leaf value rewritten as "9.5", the manifest's sha256 updated (LightGBM aborted)."""
    rewrite_model_text(model_copy, first_leaf_value)
    with pytest.raises(ModelFileError, match=r"model\.txt of .* line 12: tree_sizes puts tree 0 here") as caught:
        load_artifact(model_copy)
    assert "the file was edited" in str(caught.value)
    assert isinstance(caught.value, ArtifactError)  # every caller that handles a bad artifact handles this one


def test_a_tree_deeper_than_any_training_writes_is_refused(model_copy: Path) -> None:
    """A chain of 131,072 leaves passed every other check, loaded and predicted; the first ?explain=true request
    then killed the process (TreeSHAP recurses once per level: 50,000 aborted, 131,072 segfaulted)."""
    raw = (model_copy / MODEL_FILE).read_text()
    deepest = chain_tree(raw, 0, MAX_TREE_DEPTH + 1).encode()  # MAX_TREE_DEPTH splits from root to the last leaf
    assert check_model_text(deepest, len(FEATURE_NAMES), N_CLASSES) == deepest.decode()
    rewrite_model_text(model_copy, lambda text: chain_tree(text, 0, MAX_TREE_DEPTH + 2))
    with pytest.raises(ModelFileError, match=rf"tree 0 \(line \d+\): deeper than {MAX_TREE_DEPTH:,} splits"):
        load_artifact(model_copy)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("child out of range", r"split 0 has the left child 9999, neither a later split \(up to \d+\) nor a leaf"),
        ("child pointing back to the root", r"split 0 has the left child 0, neither a later split"),
        ("a node with two parents", r"(split|leaf) \d+ is the child of 2 splits, expected exactly one"),
        ("leaf out of range", r"split \d+ has the right child -10000, neither a later split .* nor a leaf"),
        ("feature out of range", r"split_feature 99: a split on a feature the model does not have"),
        ("one leaf value too few", r"leaf_value has \d+ values, the tree's num_leaves needs \d+"),
        ("a leaf value that is not a number", r"leaf_value is 'nan .*'\.\.\., expected a list of numbers"),
        ("an infinite threshold", r"threshold inf: a threshold too large to be finite"),
        ("a categorical split", r"decision_type 1: a categorical split, which this model never has"),
        ("an absurd leaf value", r"leaf_value 12345678\.0: a leaf value beyond \+-1e\+06"),
    ],
)
def test_a_careful_edit_that_keeps_tree_sizes_is_refused_too(model_copy: Path, case: str, reason: str) -> None:
    """Edits whose tree_sizes are recomputed. LightGBM itself loads the first three and then, predicting, reads
    outside the tree (a segfault), loops for ever, or reads another split's memory."""
    left, right = _tree0(model_copy, "left_child"), _tree0(model_copy, "right_child")
    leaves, features = _tree0(model_copy, "leaf_value"), _tree0(model_copy, "split_feature")
    edits = {
        "child out of range": ("left_child", ["9999", *left[1:]]),
        "child pointing back to the root": ("left_child", ["0", *left[1:]]),
        "a node with two parents": ("left_child", [right[0], *left[1:]]),
        "leaf out of range": ("right_child", [*right[:-1], "-10000"]),
        "feature out of range": ("split_feature", ["99", *features[1:]]),
        "one leaf value too few": ("leaf_value", leaves[1:]),
        "a leaf value that is not a number": ("leaf_value", ["nan", *leaves[1:]]),
        "an infinite threshold": ("threshold", ["1e999", *_tree0(model_copy, "threshold")[1:]]),
        "a categorical split": ("decision_type", ["1", *_tree0(model_copy, "decision_type")[1:]]),
        "an absurd leaf value": ("leaf_value", ["12345678", *leaves[1:]]),
    }
    field, values = edits[case]
    rewrite_model_text(model_copy, lambda text: tree_field(text, 0, field, " ".join(values)))
    with pytest.raises(ModelFileError, match=rf"tree 0 \(line 13\): {reason}"):
        load_artifact(model_copy)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda text: "\ufeff" + text, r"byte 0 is not ASCII \(0xef\)"),
        (lambda text: text.replace("\n", "\r\n"), r"line 1: a carriage return or NUL byte"),
        (lambda text: text[: len(text) // 2], r"tree_sizes adds up to .* bytes, but only .* follow the header"),
        (lambda text: text.replace("num_class=3", "num_class=2", 1), r"line 3: expected 'num_class=3'"),
        (lambda text: text.replace("[seed: 42]", "[seed 42]"), r"expected 'end of trees', the feature importances"),
        (lambda text: text.replace("pandas_categorical:null", 'pandas_categorical:["'), r"after the last tree"),
        (lambda _: "", r"the header ends after 0 lines"),
    ],
    ids=["byte order mark", "CRLF", "cut in half", "other class count", "parameter line", "pandas line", "empty"],
)
def test_a_file_not_in_the_form_lightgbm_writes_is_refused(model_copy: Path, edit: object, reason: str) -> None:
    rewrite_model_text(model_copy, edit)  # type: ignore[arg-type]
    with pytest.raises(ModelFileError, match=reason):
        Predictor.load(model_copy)


def test_no_bytes_in_model_txt_crash_the_process_that_loads_them(trained_model_dir: Path, tmp_path: Path) -> None:
    """Hundreds of random edits (the manifest resealed each time) in a child process: each is refused or loads and
    predicts finite probabilities; a LightGBM abort or segfault would end the child and fail this test."""
    process = subprocess.run(
        [sys.executable, "-m", "tests.ml.model_mutations", str(trained_model_dir), "400"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert process.returncode == 0, f"{process.returncode}: {process.stdout[-1500:]}{process.stderr[-1500:]}"
    refused, loaded = (int(n) for n in process.stdout.split()[-2:])
    assert refused + loaded == 400
    assert refused > 300  # nearly every edit breaks the form; the rest changed a number in place and still predict


@pytest.mark.parametrize(
    "params",
    [{"num_leaves": 63, "min_data_in_leaf": 5}, {"min_data_in_leaf": 100_000}, {"max_depth": 1}],
    ids=["deep trees", "single-leaf trees", "stumps"],
)
def test_every_shape_of_tree_lightgbm_writes_passes(params: dict[str, int]) -> None:
    """The check must never refuse a model training can write: many leaves, no split at all, one split."""
    import lightgbm as lgb

    from ml.training.data import features_matrix
    from ml.training.synthetic_data import make_synthetic

    frame = make_synthetic(3_000, seed=5)
    train_set = lgb.Dataset(features_matrix(frame), frame["Diabetes_012"].to_numpy())
    settings = {"objective": "multiclass", "num_class": N_CLASSES, "verbose": -1, "num_threads": 1, **params}
    booster = lgb.train(settings, train_set, num_boost_round=60)
    text = booster.model_to_string()
    assert check_model_text(text.encode(), len(FEATURE_NAMES), N_CLASSES) == text
