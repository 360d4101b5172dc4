"""Sphinx configuration for the jupyter-berth documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (needs ``pip install -e '.[docs,server,hub]'``).
The reference pages (configuration, REST API, CLI) are generated at build time by the
extensions in ``docs/_ext/`` from the traitlets classes, the OpenAPI parts and ``berth --help``.
"""

from __future__ import annotations

import os
import re
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


#: Pages the guides list that parallel work adds (the sidebar's page, Binder and process mode):
#: a guide's toctree names them, and while one is not in the tree yet its line is dropped.
OPTIONAL_PAGES = {"user-guide": ["sidebar"], "admin-guide": ["binder"]}


def _drop_absent_optional_pages(app, docname, source):
    for name in OPTIONAL_PAGES.get(docname, []):
        if not any(os.path.exists(os.path.join(app.srcdir, name + suffix)) for suffix in source_suffix):
            source[0] = re.sub(rf"(?m)^{re.escape(name)}\n", "", source[0])


def setup(app):
    app.connect("source-read", _drop_absent_optional_pages)
