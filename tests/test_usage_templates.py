"""The admin usage page from Jinja2 templates an admin can override (c.BerthHubService.template_paths):
a template of the same name replaces Berth's, ``{% extends "berth/usage.html" %}`` changes one block,
data stays escaped, and the hub service's trait puts the admin's directory first."""

from __future__ import annotations

import pytest

from jupyter_berth.hub import usage_templates
from jupyter_berth.hub.service_app import BerthHubService
from jupyter_berth.ledger import Ledger

from .test_usage_page import EVIL, serve
from .usage_fixtures import SINCE, UNTIL, fill_known_history


@pytest.fixture
def site_templates(tmp_path):
    where = tmp_path / "site-templates"
    where.mkdir()
    (where / "usage.html").write_text(
        '{% extends "berth/usage.html" %}\n'
        '{% block summary %}<p class="site-note">Physics department, {{ params.by }} view</p>{{ super() }}'
        "{% endblock %}\n"
        '{% block table %}<p id="site-table">{% for r in rows %}[{{ r[columns[0]] }}]{% endfor %}</p>{% endblock %}\n'
    )
    (where / "usage_error.html").write_text(
        '<!DOCTYPE html><title>Oops</title><p id="site-error">{{ status }}: {{ message }} — ask the lab office</p>'
    )
    return where


@pytest.fixture
async def served_with(tmp_path, site_templates):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}")
    fill_known_history(ledger, extra_users=EVIL)
    s = await serve(ledger, berth_templates=usage_templates.environment([str(site_templates)]))
    try:
        yield s
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()


async def test_an_admin_template_changes_blocks_of_the_page_and_keeps_the_rest(served_with):
    page = (await served_with.get("usage", since=SINCE, until=UNTIL, by="group")).body.decode()
    assert '<p class="site-note">Physics department, group view</p>' in page
    assert "kernels and" in page and page.count("<svg") == 3  # super() summary and Berth's plots stay
    assert '<p id="site-table">' in page and "<table" not in page  # the table block is the site's
    assert "[physics]" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # still escaped
    assert "<script>" not in page


async def test_an_admin_template_replaces_the_error_page(served_with):
    r = await served_with.get("usage", since="soon")
    assert r.code == 400
    body = r.body.decode()
    assert '<p id="site-error">400: ' in body and "is not a time" in body and "ask the lab office" in body


async def test_without_overrides_the_page_is_berths(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger' / 'berth.sqlite'}")
    fill_known_history(ledger)
    s = await serve(ledger)  # no berth_templates setting: Berth's own templates
    try:
        page = (await s.get("usage", since=SINCE, until=UNTIL, by="group")).body.decode()
        assert "site-note" not in page and "<table" in page and page.count("<svg") == 3
    finally:
        s.server.stop()
        s.service._db_executor.shutdown(wait=False)
        ledger.close()


def test_the_hub_service_trait_puts_the_admins_directory_first(site_templates, monkeypatch, tmp_path):
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "no-config"))
    monkeypatch.delenv("BERTH_CONFIG", raising=False)
    app = BerthHubService()
    app.initialize(["--BerthHubService.template_paths", str(site_templates)])
    env = app.templates()
    assert env.get_template("usage.html").filename == str(site_templates / "usage.html")
    assert env.get_template("page.html").filename == str(usage_templates.BUILTIN + "/page.html")
    assert env.get_template("berth/usage.html").filename == usage_templates.BUILTIN + "/usage.html"
