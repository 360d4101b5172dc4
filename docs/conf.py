"""Sphinx configuration for the jupyter-berth documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (needs ``pip install -e '.[docs,server,hub]'``).
The reference pages (configuration, REST API, CLI) are generated at build time by the
extensions in ``docs/_ext/`` from the traitlets classes, the OpenAPI parts and ``berth --help``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

from jupyter_berth._version import __version__  # noqa: E402

project = "jupyter-berth"
author = "the jupyter-berth contributors"
copyright = "the jupyter-berth contributors; BSD-3-Clause"  # noqa: A001 - Sphinx's name for it
version = release = __version__

extensions = [
    "myst_parser",
    "berth_config_reference",
    "berth_openapi_reference",
    "berth_cli_reference",
    "berth_ledger_schema",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence", "deflist"]
smartquotes = False  # `--offer` stays two hyphens (command lines are quoted from the help)
myst_heading_anchors = 4  # links such as benchmarks.md#usage-reports-… resolve to headings

html_theme = "pydata_sphinx_theme"
html_title = f"jupyter-berth {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_static_path: list[str] = []
html_show_sourcelink = False
