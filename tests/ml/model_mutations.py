"""`python -m tests.ml.model_mutations MODEL_DIR COUNT`: load COUNT randomly damaged copies of MODEL_DIR's model.txt.

Run in a child process by `tests/ml/test_model_text.py`, because a LightGBM abort or segfault would end the process
that loads the bytes. Each edit is resealed (the manifest's sha256 updated), loaded from memory and, when the loader
accepts it, used to predict; the last line printed is `<refused> <loaded>`. Every edit is printed before it is
tried, so a crash shows which one did it.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ml.inference.artifact import MODEL_FILE, ArtifactError, load_files
from ml.inference.loader import read_folder
from ml.inference.predictor import Predictor
from ml.schema import FEATURE_NAMES
from tests.damaged_models import reseal

_TOKENS = ("9.5", "-", "", "=", "nan", "inf", "1e999", "99999999999", "-2147483649", "0", "-1", " ", "\n", "Tree=0")


def _replace_token(text: str, rng: random.Random) -> str:
    """One space-, '=' or newline-delimited token anywhere replaced by another (often of another length)."""
    at = rng.randrange(len(text))
    end = at
    while end < len(text) and text[end] not in " =\n":
        end += 1
    return text[:at] + rng.choice(_TOKENS) + text[end:]


def _edit_line(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    at = rng.randrange(len(lines))
    match rng.randrange(3):
        case 0:
            del lines[at]
        case 1:
            lines.insert(at, lines[rng.randrange(len(lines))])
        case _:
            lines[at] = lines[at][: rng.randrange(len(lines[at]) + 1)]
    return "\n".join(lines)


def _bytes(text: str, rng: random.Random) -> str:
    raw = bytearray(text.encode())
    match rng.randrange(3):
        case 0:
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        case 1:
            del raw[rng.randrange(len(raw)) :]
        case _:
            raw[rng.randrange(len(raw)) : rng.randrange(len(raw))] = rng.randbytes(rng.randrange(1, 40))
    return raw.decode("latin-1")


_EDITS: tuple[Callable[[str, random.Random], str], ...] = (_replace_token, _edit_line, _bytes)


def main(model_dir: str, count: int) -> tuple[int, int]:
    files = read_folder(Path(model_dir))
    text = files[MODEL_FILE].decode()
    rows = np.random.default_rng(0).integers(0, 2, size=(64, len(FEATURE_NAMES))).astype(np.float64)
    refused = loaded = 0
    for seed in range(count):
        rng = random.Random(seed)
        edit = _EDITS[seed % len(_EDITS)]
        damaged = edit(text, rng).encode("latin-1")
        print(f"edit {seed}: {edit.__name__}", flush=True)
        try:
            predictor = Predictor(load_files(reseal(files, damaged), f"edit {seed}"))
        except ArtifactError:
            refused += 1
            continue
        proba = np.concatenate([predictor.predict(rows).probabilities, predictor.predict(rows[0]).probabilities])
        if not np.all(np.isfinite(proba)):
            raise SystemExit(f"edit {seed} loaded and predicted non-finite probabilities")
        loaded += 1
    return refused, loaded


if __name__ == "__main__":
    refused, loaded = main(sys.argv[1], int(sys.argv[2]))
    print(refused, loaded)
