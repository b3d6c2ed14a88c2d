"""Walk-through: adding a feature touches `ml/schema.py`, the synthetic generator and the API guide's examples, and
nothing else. In a scratch copy of the project a 22nd (or later) feature is added in those three places only, then
the tests that know the shape of a record run there and must pass: nothing else may write the feature count or
the list of feature names by hand."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

from ml.schema import FEATURES

ROOT = Path(__file__).resolve().parents[1]
NEW_FEATURE = "Asthma"
#: The only files the walk-through edits.
TOUCHED = ("ml/schema.py", "ml/training/synthetic_data.py", "docs/api-guide.md")
#: The tests that hold a record's width, the feature list or the docs' example records.
AFFECTED_TESTS = (
    "tests/ml/test_contract.py",
    "tests/ml/test_synthetic.py",
    "tests/ml/test_data_prep.py",
    "tests/ml/test_inference.py",
    "tests/ml/test_lightgbm_capi.py",
    "tests/ml/test_model_text.py",
    "tests/service/test_validation.py",
    "tests/frontend/test_ui_batch.py",
    "tests/frontend/test_ui_app.py::test_batch_file_without_the_columns_is_refused",
    "tests/frontend/test_ui_app.py::test_the_batch_table_leads_with_the_users_id_and_names_the_class",
    "tests/docs/test_api_guide.py",
)


def _edit(path: Path, anchor: str, replacement: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(anchor) >= 1, f"{path}: {anchor!r} not found; update the walk-through"
    path.write_text(text.replace(anchor, replacement), encoding="utf-8")


def add_feature(root: Path) -> None:
    """What a developer writes to add a yes/no question: its entry in the schema, how the synthetic generator draws
    it, and its value in the API guide's example records."""
    _edit(
        root / "ml/schema.py",
        "\n)\n\nFEATURE_NAMES",
        f'\n    _binary("{NEW_FEATURE}", "Ever told of having asthma.", "Have you ever been told you have asthma?"),'
        "\n)\n\nFEATURE_NAMES",
    )
    _edit(
        root / "ml/training/synthetic_data.py",
        "}  # fmt: skip",
        f'    "{NEW_FEATURE}": _Spec((0.05, -0.05, 0.3, 0.1), 0.14, risk=0.05),\n}}  # fmt: skip',
    )
    guide = root / "docs/api-guide.md"
    last = FEATURES[-1].name
    text, examples = re.subn(rf'("{last}": [0-9.]+)\}}', rf'\1, "{NEW_FEATURE}": 0}}', guide.read_text("utf-8"))
    assert examples >= 2, "the API guide's example records were not found"
    guide.write_text(text, encoding="utf-8")


def _scratch_copy(destination: Path) -> Path:
    skip = shutil.ignore_patterns("__pycache__", "_build", "benchmarks", "*.ipynb")
    for folder in ("ml", "service", "frontend", "tests", "docs"):
        shutil.copytree(ROOT / folder, destination / folder, ignore=skip)
    shutil.copy(ROOT / "pyproject.toml", destination)
    # The API guide's commands say `uv run`: in the copy they run in this environment, unsynced.
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination


def test_adding_a_feature_needs_the_schema_the_generator_and_the_docs_examples_only(tmp_path: Path) -> None:
    scratch = _scratch_copy(tmp_path / "project")
    before = {name: (scratch / name).read_bytes() for name in TOUCHED}
    add_feature(scratch)
    assert all((scratch / name).read_bytes() != content for name, content in before.items())

    env = {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1", "UV_NO_SYNC": "1"}
    width = subprocess.run(
        [sys.executable, "-c", "import ml.schema as s; print(s.__file__, len(s.FEATURES))"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert width == [str(scratch / "ml/schema.py"), str(len(FEATURES) + 1)]  # the copy is what runs

    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *AFFECTED_TESTS]
    command += ["-m", "not container and not browser", f"--basetemp={tmp_path / 'pytest'}", "--durations=8"]
    result = subprocess.run(command, cwd=scratch, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


#: Where the number of features may appear as a plain number: the synthetic generator's counts of days (0 to 30).
_DAY_COUNTS = "ml/training/synthetic_data.py"


def test_no_code_writes_the_feature_count() -> None:
    """The count once stood in ~17 places (messages, an OpenAPI description, a settings limit `le=21`, docstrings);
    none of ml, service or frontend may write it as a number, in a string or in a comment."""
    count = str(len(FEATURES))
    word = re.compile(rf"\b{count}\b")
    found = []
    for path in sorted(p for package in ("ml", "service", "frontend") for p in (ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
            number = token.type == tokenize.NUMBER and token.string == count and name != _DAY_COUNTS
            text = token.type in (tokenize.STRING, tokenize.COMMENT) and word.search(token.string)
            if number or text:
                found.append(f"{name}:{token.start[0]}: {token.line.strip()}")
    assert not found, "\n".join(found)


#: The prose a reader sees: the docs' pages (their counts are `{{ n_features }}`), the README and CONTRIBUTING.
_PROSE = ("docs/*.md", "README.md", "CONTRIBUTING.md")


def test_no_prose_writes_the_feature_count() -> None:
    """The README said "the 21 health indicators" and the API guide quoted "exactly the 21 feature columns": a 22nd
    feature would leave both wrong. The count next to what it counts, across a line break too, is refused."""
    count = re.compile(
        rf"(?<![\w.,$]){len(FEATURES)}\s+(?:[\w-]+\s+)?(?:features?|indicators?|columns?|answers?|questions?)\b"
    )
    found = [
        f"{path.relative_to(ROOT)}: {match.group()!r}"
        for pattern in _PROSE
        for path in sorted(ROOT.glob(pattern))
        for match in count.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not found, "write {{ n_features }} (docs) or words that do not count (README):\n" + "\n".join(found)
