"""Sphinx configuration: MyST pages, executed notebooks, API reference from docstrings; builds offline with -W."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
# The project itself is installed (`uv sync`); only Sphinx's own extension folder goes on the path.
sys.path.insert(0, str(DOCS / "_ext"))

import project_tables  # noqa: E402  (needs the path above)
from sphinx.deprecation import RemovedInSphinx10Warning  # noqa: E402

# sphinx-autodoc-typehints calls an API Sphinx 10 removes, twice per documented object; hundreds of identical lines
# would hide a new warning. Only that deprecation, only from that package, is silenced.
warnings.filterwarnings("ignore", category=RemovedInSphinx10Warning, module="sphinx_autodoc_typehints")

project = "Diabetes status"
author = "The diabetes-status contributors"
copyright = "2026, the diabetes-status contributors"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx_autodoc_typehints",
    "sphinx.ext.viewcode",
    "project_tables",
]
# Docstrings use one markup, Markdown-style code spans: a single-backtick span is inline code.
default_role = "code"

exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
# .rst first: autosummary writes its generated (reStructuredText) pages with the first suffix.
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# MyST
myst_enable_extensions = ["colon_fence", "deflist", "fieldlist", "substitution"]
# Every number measured on the real file comes from docs/_data/real_metrics.json, as {{ real_... }} substitutions.
# Every price comes from stacks/costs.py, as {{ cost_... }} substitutions and the generated cost tables; the counts
# and limits the code decides (features, split shares, promotion limits) come from the code.
myst_substitutions = {
    **project_tables.substitutions(project_tables.load_real_metrics()),
    **project_tables.cost_substitutions(),
    **project_tables.code_substitutions(),
}
myst_heading_anchors = 3

# Notebooks: committed without outputs, executed at every build; a failing cell fails the build.
nb_execution_mode = "force"
nb_execution_timeout = int(os.environ.get("DOCS_NB_TIMEOUT", "900"))
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# API reference
autosummary_generate = True
# Annotations that only exist for type checkers (pulumi.Output, boto3 stubs) cannot be resolved at docs time; the
# signature still shows them as written.
suppress_warnings = ["sphinx_autodoc_typehints.forward_reference", "sphinx_autodoc_typehints.guarded_import"]
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
# Inherited docstrings come from third-party bases (mlflow, pydantic) written for their own docs.
autodoc_inherit_docstrings = False
typehints_fully_qualified = False
always_document_param_types = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# HTML
html_theme = "furo"
html_title = "Diabetes status"
html_static_path = ["_static"]
html_css_files = ["notebook-tables.css"]
html_last_updated_fmt = ""
html_show_sourcelink = False


def _drop_foreign_docstrings(app: Any, what: str, name: str, obj: Any, options: Any, lines: list[str]) -> None:
    """Autodoc reads the docstring of every name a module imports before it leaves them out; those of third-party
    classes and functions (FastAPI, pydantic, ...) are written for their own tools, so they are not parsed here."""
    if what in ("class", "exception", "function", "method"):
        module = getattr(obj, "__module__", None) or ""
        if module.split(".", 1)[0] not in project_tables.PACKAGES:
            lines.clear()


def setup(app: Any) -> None:
    app.connect("autodoc-process-docstring", _drop_foreign_docstrings, priority=100)
