"""The development install: ``pip install -e .`` then ``berth develop`` in a virtualenv of its own gives an
enabled server extension (``berth/api`` answers) and a lab extension linked to the checkout.

The virtualenv holds the dependencies only (made once per setup.cfg, like tests/test_binder.py's);
each run installs a fresh copy of the checkout into it editable, undoes what an earlier run's
``berth develop`` did, and first shows the problem (``berth/api`` answers 404, no lab extension)."""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.hub_process import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("BERTH_TEST_CACHE") or Path.home() / ".cache" / "jupyter-berth-tests")


def run(cmd, **kw) -> str:
    done = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-4000:]}"
    return done.stdout


def requirements() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg["options"]["install_requires"].split("\n") + cfg["options.extras_require"]["lab"].split("\n")
    return sorted({line.strip() for line in lines if line.strip()})


def clean_env(**extra) -> dict:
    """A developer's shell: nothing from this checkout's Python or Jupyter settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "BERTH_"))}
    return {**env, **extra}


@pytest.fixture(scope="module")
def venv() -> Path:
    key = hashlib.sha256("\n".join(requirements()).encode()).hexdigest()[:12]
    path = CACHE / f"develop-venv-{key}"
    if not (path / ".deps-installed").exists():
        for old in CACHE.glob("develop-venv-*"):
            shutil.rmtree(old, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", path], env=clean_env())
        run([path / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements()])
        (path / ".deps-installed").write_text("\n".join(requirements()))
    return path


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The checkout's files (git ls-files) with the lab extension built, as a developer has them."""
    built = ROOT / "core" / "labextension"
    if not (built / "package.json").exists():
        run(["bash", ROOT / "scripts" / "build-labextension.sh"], env={**os.environ, "BERTH_NO_LABEXTENSION_LINK": "1"})
    dest = tmp_path_factory.mktemp("develop") / "jupyter-berth"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    for rel in filter(None, listed.split("\0")):
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.copytree(built, dest / "core" / "labextension")
    return dest


def serve(venv: Path, tmp: Path, env: dict):
    """A jupyter server of the venv on a free loopback port: (process, base URL, token)."""
    port, token = free_port(), secrets.token_hex(16)
    log = open(tmp / f"server-{port}.log", "wb")
    proc = subprocess.Popen(
        [
            venv / "bin" / "jupyter",
            "server",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={tmp}",
            "--BerthExtensionApp.sync_kernelspecs=False",
        ],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / f"server-{port}.log").read_text()
        try:
            if httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200:
                return proc, url, token
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise AssertionError("the jupyter server did not answer in 60 s")


def served(venv: Path, tmp: Path, env: dict) -> tuple[int, str]:
    """(status of berth/api/openapi.json, the /lab page) of a server started and stopped for the question."""
    proc, url, token = serve(venv, tmp, env)
    try:
        api = httpx.get(f"{url}/berth/api/openapi.json", params={"token": token}, timeout=30).status_code
        lab = httpx.get(f"{url}/lab", params={"token": token}, timeout=30).text
        return api, lab
    finally:
        proc.terminate()
        proc.wait(30)


def test_pip_install_editable_then_berth_develop_enables_both_extensions(venv, checkout, tmp_path):
    py, berth, jupyter = (venv / "bin" / name for name in ("python", "berth", "jupyter"))
    env = clean_env(
        PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
        VIRTUAL_ENV=str(venv),
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        BERTH_DATA_DIR=str(tmp_path / "berth"),
    )
    lab_link = venv / "share" / "jupyter" / "labextensions" / "jupyter-berth"
    enable_file = venv / "etc" / "jupyter" / "jupyter_server_config.d" / "jupyter_berth.json"
    for leftover in (lab_link, enable_file):  # an earlier run's develop step: this run starts without it
        if leftover.is_symlink() or leftover.is_file():
            leftover.unlink()
    run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", checkout], env=env)
    where = run([py, "-c", "import jupyter_berth; print(jupyter_berth.__file__)"], env=env, cwd=tmp_path).strip()
    assert where == str(checkout / "core" / "__init__.py")

    # the problem: an editable install installs no data files
    assert not enable_file.exists() and not lab_link.exists()
    assert "jupyter_berth.server" not in run([jupyter, "server", "extension", "list"], env=env, cwd=tmp_path)
    api, lab = served(venv, tmp_path, env)
    assert api == 404 and '"jupyter-berth"' not in lab

    out = run([berth, "develop"], env=env, cwd=tmp_path)
    assert f"linked {lab_link} -> {checkout / 'core' / 'labextension'}" in out, out
    assert os.readlink(lab_link) == str(checkout / "core" / "labextension")
    assert json.loads(enable_file.read_text())["ServerApp"]["jpserver_extensions"] == {"jupyter_berth.server": True}
    serverext = run([jupyter, "server", "extension", "list"], env=env, cwd=tmp_path)
    assert "jupyter_berth.server" in serverext and "enabled" in serverext, serverext
    labext = run([jupyter, "labextension", "list"], env=env, cwd=tmp_path)
    assert "jupyter-berth" in labext and "enabled" in labext and "OK" in labext, labext

    api, lab = served(venv, tmp_path, env)
    assert api == 200  # berth/api answers
    assert '"name": "jupyter-berth"' in lab or '"name":"jupyter-berth"' in lab  # Lab loads the linked extension

    again = run([berth, "develop"], env=env, cwd=tmp_path)  # idempotent: the link is replaced, not refused
    assert "linked" in again
    out = run([berth, "develop", "--uninstall"], env=env, cwd=tmp_path)
    assert not lab_link.exists() and not enable_file.exists(), out
