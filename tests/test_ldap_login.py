"""A real login for a classroom: Debian's slapd (a throwaway directory on loopback, scripts/ldap-up.sh),
jupyterhub-ldapauthenticator from PyPI, the directory's groups made hub groups at login
(jupyter_berth.hub.login_groups) and Berth's group policy applied: in headless Chromium a student
logs in with the directory's password and the spawn form shows the class policy; a directory user
in no allowed group is refused (labextension/ui-tests/ldap-login.e2e.mjs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import docker
import httpx
import pytest

from jupyter_berth.hub.login_groups import group_name
from tests.browser_netns import require_browser, run_browser
from tests.hub_process import HubProcess, running

pytestmark = [pytest.mark.docker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
SUFFIX = "dc=berth,dc=test"
PASSWORD = "berth-ldap"  # scripts/ldap-up.sh's test directory
#: The default policy is smaller than the class's: the form shows which one applied.
POLICIES = {
    "default": {"max_cpu": 0.5, "max_mem": "1G", "default": {"cpu": 0.25, "mem": "256M"}},
    "groups": {
        "class-a": {"max_cpu": 1, "max_mem": "2G", "total_cpu": 1.5, "total_mem": "3G", "max_kernels": 2},
        "class-a-teachers": {"max_cpu": 2, "max_mem": "4G", "total_cpu": 3, "total_mem": "6G", "max_kernels": 4},
    },
    "users": {},
}


def test_group_names_from_dns():
    assert group_name(f"cn=class-a,ou=groups,{SUFFIX}") == "class-a"
    assert group_name(f"CN=Class A, OU=groups,{SUFFIX}") == "Class A"
    assert group_name(f"cn=x,{SUFFIX}", {f"CN=x, {SUFFIX.upper()}": "renamed"}) == "renamed"


@pytest.fixture
def directory(tmp_path):
    """A slapd of this test's own (scripts/ldap-up.sh): its URL; stopped by its pid after."""
    if not (shutil.which("slapd") or os.path.exists("/usr/sbin/slapd")) and os.geteuid() != 0:
        pytest.skip("slapd is not installed (scripts/test.sh installs it)")
    where = tmp_path / "ldap"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ldap-up.sh"), str(where)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    yield done.stdout.strip().splitlines()[-1]
    pid = int((where / "slapd.pid").read_text())
    os.kill(pid, signal.SIGTERM)


def ldap_hub_config(url: str) -> str:
    host, port = url.removeprefix("ldap://").split(":")
    groups = [f"cn=class-a,ou=groups,{SUFFIX}", f"cn=class-a-teachers,ou=groups,{SUFFIX}"]
    return f"""
from jupyter_berth.hub.login_groups import ldap_groups_hook
c.JupyterHub.authenticator_class = "ldapauthenticator.LDAPAuthenticator"
c.LDAPAuthenticator.server_address = {host!r}
c.LDAPAuthenticator.server_port = {int(port)}
c.LDAPAuthenticator.tls_strategy = "insecure"  # a throwaway directory on loopback; use before_bind (TLS) for real
c.LDAPAuthenticator.bind_dn_template = ["uid={{username}},ou=people,{SUFFIX}"]
c.LDAPAuthenticator.allowed_groups = {groups!r}
c.Authenticator.allowed_users = set()
c.Authenticator.manage_groups = True
c.Authenticator.post_auth_hook = ldap_groups_hook()
c.JupyterHub.load_groups = {{}}
"""


def test_a_student_logs_in_with_ldap_and_sees_the_class_policy(tmp_path, directory):
    require_browser()
    try:
        docker.from_env().images.get("berth/singleuser:3.11")
    except docker.errors.ImageNotFound:
        pytest.skip("berth/singleuser:3.11 is missing: run `berth images bootstrap --all`")
    hub = HubProcess(tmp_path / "hub", users=("teacher",), policies=POLICIES, extra=ldap_hub_config(directory))
    shots = os.environ.get("BERTH_UI_SCREENSHOTS", "")
    with running(hub):
        done = run_browser(
            ["node", str(ROOT / "labextension" / "ui-tests" / "ldap-login.e2e.mjs")],
            hub.url,
            cwd=ROOT,
            env={
                **os.environ,
                "BERTH_UI_USER": "student1",
                "BERTH_UI_PASSWORD": PASSWORD,
                "BERTH_UI_OUTSIDER": "outsider",
                "BERTH_UI_CPU": "1",
                "BERTH_UI_MEM": "2 GiB",
                "BERTH_UI_SCREENSHOTS": str(ROOT / "docs" / "images") if shots not in ("", "0") else "",
            },
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + "\n" + hub.log_tail(40)
        assert "ldap-login:" in done.stdout and "passed" in done.stdout
        # the hub's view: the student is in the directory's class group, the outsider never became a user
        student = httpx.get(f"{hub.api}/users/student1", headers=hub.headers, timeout=30).json()
        assert student["groups"] == ["class-a"] and not student["admin"]
        assert httpx.get(f"{hub.api}/users/outsider", headers=hub.headers, timeout=30).status_code == 404
        assert "student1 logs in with groups ['class-a'] (from LDAP)" in hub.log_tail(400)
