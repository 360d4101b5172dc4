"""The documentation site: it builds with warnings as errors, and its generated reference pages
hold every option, operation and command the code has.

One Sphinx build (``-W --keep-going -n``, as ``docs/docs-build.md`` tells people to run it)
into a temporary directory, shared by the tests of this module; the expectations are read from
the code itself (traitlets classes, the merged OpenAPI document, the ``berth`` command tree),
so a new option, route or command that the generators miss fails here.
"""

from __future__ import annotations

import html
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed: pip install -e '.[docs]'"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> pathlib.Path:
    for module in ("sphinx", "myst_parser", "pydata_sphinx_theme"):
        _need(module)
    out = tmp_path_factory.mktemp("docs-html")
    doctrees = tmp_path_factory.mktemp("docs-doctrees")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-q",
            "-b",
            "html",
            "-d",
            str(doctrees),
            str(DOCS),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    problems = "\n".join(line for line in result.stderr.splitlines() if "WARNING" in line or "ERROR" in line)
    assert result.returncode == 0 and not problems, (
        f"sphinx-build exited {result.returncode}\n{problems or result.stderr[-4000:]}"
    )
    return out


def _text(site: pathlib.Path, page: str) -> str:
    """The page's HTML with tags removed and entities decoded (headings, table cells, code)."""
    raw = (site / page).read_text()
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_site_builds_without_warnings(site):
    for page in (
        "index.html",
        "quickstart.html",
        "user-guide.html",
        "admin-guide.html",
        "classroom.html",
        "backup.html",
        "upgrading.html",
        "vscode.html",
        "benchmarks.html",
        "architecture.html",
        "changelog.html",
        "license.html",
        "reference/configuration.html",
        "reference/rest-api.html",
        "reference/cli.html",
        "reference/ledger-schema.html",
    ):
        assert (site / page).is_file(), page
    # the quickstart shows the real sidebar (the pictures are copied into the site)
    quickstart = (site / "quickstart.html").read_text()
    assert "sidebar.png" in quickstart and (site / "_images" / "sidebar.png").is_file()


def test_configuration_reference_has_every_option(site):
    import berth_config_reference as gen

    page = (site / "reference" / "configuration.html").read_text()
    docs, errors = gen.collect()
    assert not errors
    names = {doc.name for doc in docs}
    assert {
        "BerthService",
        "ImageCatalog",
        "ImageVersions",
        "FolderManager",
        "UsageTracker",
        "GpuManager",
        "WarmPool",
        "ServerPool",
        "SwarmRuntime",
        "BerthProvisioner",
        "BerthExtensionApp",
        "BerthSpawner",
        "BerthHubService",
    } <= names
    listed = 0
    for doc in docs:
        for trait in doc.traits:
            if not trait.foreign:
                assert f'id="confval-{doc.name}.{trait.name}"' in page, f"{doc.name}.{trait.name}"
                listed += 1
    # spot checks against the code: name, type, default and help of one option
    from jupyter_berth.area import MOVED_SETTINGS
    from jupyter_berth.service import BerthService
    from jupyter_berth.usage.manager import UsageTracker

    help_text = UsageTracker.class_traits()["sample_interval"].help
    text = _text(site, "reference/configuration.html")
    assert "UsageTracker.sample_interval" in text and help_text in " ".join(text.split())
    for old, (_, cls, new) in MOVED_SETTINGS.items():  # each old name, and where it went
        assert f"c.BerthService.{old}" in text and f"c.{cls}.{new}" in text, old
    assert set(BerthService.class_traits(config=True)) <= {
        t.name for d in docs if d.name == "BerthService" for t in d.traits
    }
    assert listed > 100
    # Berth's own defaults of inherited DockerSpawner options
    assert "BerthSpawner.pull_policy" in text and "'never'" in text


def test_every_option_has_help():
    _need("sphinx")
    import berth_config_reference as gen

    docs, _ = gen.collect()
    missing = [f"{d.name}.{t.name}" for d in docs for t in d.traits if not t.foreign and not t.help.strip()]
    assert not missing, f"configurable traits without help=: {', '.join(missing)}"


def test_rest_api_reference_has_every_operation(site):
    from jupyter_berth.server.handlers.meta import openapi_document

    text = " ".join(_text(site, "reference/rest-api.html").split())
    doc = openapi_document("/")
    count = 0
    for path, item in doc["paths"].items():
        for method in ("get", "put", "post", "patch", "delete"):
            if method in item:
                assert f"{method.upper()} {path}" in text, f"{method.upper()} {path}"
                count += 1
    assert count >= 30
    assert "GET /berth/api/images" in text and "POST /berth/api/kernels" in text
    for schema in doc["components"]["schemas"]:
        assert f'id="berth-api-schema-{schema.lower()}"' in (site / "reference" / "rest-api.html").read_text(), schema
    # parameters and bodies are rendered: a query parameter of the usage report and a request body field
    assert "since" in text and "Request body" in text


def test_cli_reference_has_every_command(site):
    import berth_cli_reference as gen

    text = _text(site, "reference/cli.html")
    commands = gen.command_tree()
    assert len(commands) > 25
    for command in commands:
        assert command.name in text, command.name
    for expected in (
        "berth images bootstrap",
        "berth db upgrade",
        "berth usage",
        "berth folders create",
        "--db-url=<Unicode>",
        "--recipe=<Enum>",
        "Equivalent to: [--ImagesBootstrapApp.force=True]",
    ):
        assert expected in text, expected


def test_ledger_schema_has_every_table(site):
    from jupyter_berth.ledger import models, models_folders, models_images  # noqa: F401 - they register tables

    text = _text(site, "reference/ledger-schema.html")
    for table in models.Base.metadata.tables.values():
        assert table.name in text, table.name
        for column in table.columns:
            assert column.name in text, f"{table.name}.{column.name}"
