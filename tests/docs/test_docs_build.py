"""The docs build with warnings as errors, executes both notebooks on synthetic data, and renders what they promise.

The site is built once per session (the build executes the notebooks, so they are not run a second time); each test
then checks one property of the output.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml.schema import AGE_BANDS, CLASSES, FEATURE_NAMES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))

import project_tables  # noqa: E402
from markdown_code_spans import literal_spans  # noqa: E402

NOTEBOOKS = sorted((DOCS / "notebooks").glob("*.ipynb"))
PAGES = (
    "index",
    "architecture",
    "quickstart",
    "data",
    "imbalance",
    "model-card",
    "api-guide",
    "ui-guide",
    "deploy",
    "runbook-ecs",
    "runbook-eks",
    "operations",
    "contributing",
    "api/index",
    "notebooks/01_eda",
    "notebooks/02_model_dev",
)
#: Small enough for CI, large enough for every class to appear on both sides of each split.
SYNTHETIC_ROWS = "8000"


def _text(html: str) -> str:
    """Visible text of a page (tags dropped, whitespace collapsed)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the HTML docs once into a temporary folder, exactly as CI does, but on synthetic data."""
    tmp = tmp_path_factory.mktemp("docs")
    out = tmp / "html"
    env = {
        **os.environ,
        # The notebooks' kernel must be this venv's Python (ipykernel is in the docs group).
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
        "DIABETES_DATA": "synthetic",
        "DIABETES_SYNTHETIC_ROWS": SYNTHETIC_ROWS,
        "TMPDIR": str(tmp),  # the notebooks' synthetic file and models stay in this test's folder
    }
    started = time.perf_counter()
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-d", str(tmp / "doctrees")]
    result = subprocess.run(
        [*command, str(DOCS), str(out)], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        warnings = [line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
        pytest.fail(
            f"sphinx-build -W failed (exit {result.returncode}) after {seconds:.0f} s:\n"
            + "\n".join(warnings[-40:] or result.stderr.splitlines()[-40:])
        )
    print(f"docs built in {seconds:.0f} s")
    return out


def _page(site: Path, name: str) -> str:
    return (site / f"{name}.html").read_text(encoding="utf-8")


def test_every_page_is_built(site: Path) -> None:
    missing = [name for name in PAGES if not (site / f"{name}.html").is_file()]
    assert not missing, f"pages not built: {missing}"
    index = _page(site, "index")
    for name in PAGES[1:]:
        assert f'href="{name}.html' in index, f"{name} is not linked from the index"


def test_ui_guide_shows_the_screenshot(site: Path) -> None:
    html = _page(site, "ui-guide")
    assert re.search(r'<img [^>]*src="_images/ui-screenshot.png"', html)
    assert (site / "_images" / "ui-screenshot.png").is_file()


def test_feature_table_is_generated_from_the_schema(site: Path) -> None:
    text = _text(_page(site, "data"))
    for name in FEATURE_NAMES:
        assert f"{name}" in text
    for label in AGE_BANDS.values():
        assert label in text
    for cls in CLASSES:
        assert cls.description in text


def test_real_metrics_are_rendered_from_the_single_json(site: Path) -> None:
    metrics = project_tables.load_real_metrics()
    for page in ("imbalance", "model-card", "index"):
        html = _page(site, page)
        assert "{{" not in _text(html), f"an unrendered substitution is left on {page}"
        assert f"{metrics['test']['weighted_f1']:.4f}" in html
    card = _text(_page(site, "model-card"))
    for group in metrics["subgroups"]:
        assert f"{group['weighted_f1']:.4f}" in card, f"subgroup {group['feature']} {group['group']} missing"


def test_api_reference_covers_every_module(site: Path) -> None:
    for names in project_tables.discover_modules().values():
        for name in names:
            page = site / "api" / "_autosummary" / f"{name}.html"
            assert page.is_file(), f"no API page for {name}"
    schema = (site / "api" / "_autosummary" / "ml.schema.html").read_text(encoding="utf-8")
    assert 'id="ml.schema.Feature"' in schema
    assert 'id="ml.data.read_csv"' in (site / "api" / "_autosummary" / "ml.data.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(("notebook", "min_images"), [("01_eda", 5), ("02_model_dev", 3)])
def test_notebooks_are_executed_with_figures_and_say_which_data(site: Path, notebook: str, min_images: int) -> None:
    html = _page(site, f"notebooks/{notebook}")
    images = re.findall(r"<img [^>]*src=\"([^\"]+)\"", html)
    assert len(images) >= min_images, f"{notebook}: {len(images)} figures rendered"
    for src in images:
        assert (site / "notebooks" / src).resolve().is_file(), src
    text = _text(html)
    assert "Data on this page: SYNTHETIC" in text
    assert "Traceback" not in text


def test_model_development_notebook_compares_the_strategies(site: Path) -> None:
    text = _text(_page(site, "notebooks/02_model_dev"))
    for candidate in ("none+argmax", "none+tuned_rule", "class_weights+argmax", "class_weights+tuned_rule"):
        assert candidate in text
    assert "logistic regression" in text
    assert "majority class" in text


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(notebook: Path) -> None:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])]
    assert not dirty, f"{notebook.name}: cells {dirty} hold outputs; clear them before committing"


def test_both_notebooks_exist() -> None:
    assert [p.stem for p in NOTEBOOKS] == ["01_eda", "02_model_dev"]


def test_entry_scripts_are_not_imported_by_the_api_reference() -> None:
    modules = {name for names in project_tables.discover_modules().values() for name in names}
    assert "ml.schema" in modules
    assert "stacks.ecs.platform" in modules
    assert not any(name.endswith("__main__") for name in modules)
    assert not modules & project_tables.ENTRY_SCRIPTS


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("raises `ApiError`s when", "raises ``ApiError``\\ s when"),
        ("keys (`diabetes:imageTag`, `x`)", "keys (``diabetes:imageTag``, ``x``)"),
        ("a :class:`Feature` and ``ml.schema``", "a :class:`Feature` and ``ml.schema``"),
        ("see `the docs <https://example.org>`_", "see `the docs <https://example.org>`_"),
    ],
)
def test_markdown_code_spans_become_literals(line: str, expected: str) -> None:
    assert literal_spans(line) == expected
