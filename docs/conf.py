"""Sphinx configuration for the belle-kedro documentation.

Build from the repository root with
``sphinx-build -W --keep-going -q -b html docs docs/_build/html``.
"""

import importlib
import logging
import shutil
import sys
from pathlib import Path

# Document this checkout's package, not whichever copy the environment installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from belle_kedro import __version__

DOCS = Path(__file__).resolve().parent

# Autodoc imports Kedro, which logs "Using '...' as logging configuration" at INFO
# when kedro.framework.project is first imported; keep that line out of a quiet build.
logging.disable(logging.INFO)
try:
    importlib.import_module("kedro.framework.project")
finally:
    logging.disable(logging.NOTSET)

project = "belle-kedro"
author = "belle-kedro contributors"
release = version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
]

# The pages are Markdown; autosummary writes its stubs as reStructuredText.
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# API pages are generated at build time into api/generated (git-ignored). Start
# from an empty folder so a stub left by a removed module cannot fail the build.
shutil.rmtree(DOCS / "api" / "generated", ignore_errors=True)
autosummary_generate = True
autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Only this project's own docstrings: an override without one (a Trainer or callback
# method) stays bare instead of repeating transformers' text.
autodoc_inherit_docstrings = False

myst_heading_anchors = 3

html_theme = "alabaster"
html_show_sourcelink = False
