"""The Binder set-up, as far as it can be tried here: binder/postBuild in a clean virtualenv, then
JupyterLab started through binder/start with no container engine reachable.

What Binder does that this does not: conda (environment.yml's conda part: python, nodejs, pip) —
the virtualenv gets environment.yml's pip part instead, and this machine's Node builds the
sidebar when it is not built yet. The repository is copied first (tracked and untracked files,
as repo2docker copies the checkout), so the build leaves nothing in the work tree.

The virtualenv with the dependencies is cached (keyed by binder/environment.yml and setup.cfg)
under ~/.cache/jupyter-berth-tests; postBuild runs in it every time.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from tests.browser_netns import require_browser
from tests.hub_process import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
BINDER = REPO / "binder"
CACHE = Path(os.environ.get("BERTH_TEST_CACHE") or Path.home() / ".cache" / "jupyter-berth-tests")


def pip_requirements() -> list[str]:
    """The pip part of binder/environment.yml (its conda part is python, nodejs and pip)."""
    env = yaml.safe_load((BINDER / "environment.yml").read_text())
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            return list(dep["pip"])
    return []


def run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def venv() -> Path:
    """A virtualenv with environment.yml's pip part, made once per version of binder/ and setup.cfg.

    Held under a lock for the module: postBuild installs a checkout into it, so two test runs on
    one host (two checkouts) take turns instead of installing over each other."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / "binder.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield _cached_venv()


def _cached_venv() -> Path:
    key = hashlib.sha256((BINDER / "environment.yml").read_bytes() + (REPO / "setup.cfg").read_bytes()).hexdigest()[:12]
    path = CACHE / f"binder-venv-{key}"
    if not (path / ".deps-installed").exists():
        for old in CACHE.glob("binder-venv-*"):
            shutil.rmtree(old, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "venv", str(path)])
        run(
            [
                str(path / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *pip_requirements(),
            ]
        )
        (path / ".deps-installed").write_text(" ".join(pip_requirements()))
    return path


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The repository as repo2docker sees it: its files, plus the sidebar's build when there is one."""
    dest = tmp_path_factory.mktemp("binder") / "repo"
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO).stdout
    for rel in filter(None, listed.split("\0")):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    built = REPO / "core" / "labextension"
    if (built / "package.json").exists():
        shutil.copytree(built, dest / "core" / "labextension")
    return dest


def post_build(venv: Path, checkout: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv}/bin:{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    if (checkout / "core" / "labextension" / "package.json").exists():
        # built already (scripts/test.sh builds it first): setup.py ships that build instead of running Node again
        env["BERTH_SKIP_LABEXTENSION_BUILD"] = "1"
    return run(["bash", str(checkout / "binder" / "postBuild")], cwd=checkout, env=env).stdout


def sidebar_in_process_mode(url: str, token: str) -> None:
    """Chromium (Debian's, driven by playwright-core) shows the sidebar in process mode and runs a notebook."""
    script = REPO / "labextension" / "ui-tests" / "process-mode.e2e.mjs"
    require_browser()
    shots = os.environ.get("BERTH_UI_SCREENSHOTS", "")
    env = {
        **os.environ,
        "BERTH_UI_URL": url,
        "BERTH_UI_TOKEN": token,
        "BERTH_UI_SCREENSHOTS": str(REPO / "docs" / "images") if shots not in ("", "0") else "",
    }
    done = subprocess.run(["node", str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "process-mode:" in done.stdout and "passed" in done.stdout


async def execute_over_websocket(base: str, token: str, kernel_id: str, code: str) -> tuple[str, str]:
    """Run ``code`` as JupyterLab does (the kernel's websocket); returns (reply status, stdout)."""
    from tornado.websocket import websocket_connect

    ws = await websocket_connect(f"ws{base[4:]}api/kernels/{kernel_id}/channels?token={token}")
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "msg_type": "execute_request",
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "buffers": [],
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    out, status = [], None
    deadline = time.monotonic() + 60
    while status is None or not out:
        text = await asyncio.wait_for(ws.read_message(), timeout=max(1, deadline - time.monotonic()))
        assert text is not None, "the kernel's websocket closed"
        msg = json.loads(text)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))
        elif msg["msg_type"] == "execute_reply":
            status = msg["content"]["status"]
            if status != "ok":
                break
    ws.close()
    return status, "".join(out)


def test_postbuild_in_a_clean_venv_then_lab_runs_process_kernels(venv, checkout, tmp_path):
    log = post_build(venv, checkout)
    assert "postBuild: jupyter-berth installed" in log
    site = run(
        [str(venv / "bin" / "python"), "-c", "import jupyter_berth, os; print(os.path.dirname(jupyter_berth.__file__))"]
    ).stdout
    assert str(venv) in site and str(REPO) not in site  # the installed package, not the work tree

    home, notebooks = tmp_path / "home", tmp_path / "notebooks"
    home.mkdir()
    notebooks.mkdir()
    port, token = free_port(), uuid.uuid4().hex
    env = {
        "PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine-here.sock",
    }  # nothing answers there
    cmd = [
        str(checkout / "binder" / "start"),
        str(venv / "bin" / "jupyter"),
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={notebooks}",
        # as on a Binder, where the cgroup filesystem is not writable (here, as root, it is)
        "--ProcessRuntime.limits=rlimit",
    ] + (["--allow-root"] if os.getuid() == 0 else [])
    server_log = tmp_path / "lab.log"
    with open(server_log, "wb") as out:
        server = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}/"
    headers = {"Authorization": f"token {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for _ in range(600):
                assert server.poll() is None, server_log.read_text()[-4000:]
                try:
                    if http.get("api/status").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            assert httpx.get(f"{base}berth/api/info", timeout=60).status_code == 403  # no token, no login cookie
            info = http.get("berth/api/info").json()
            assert (info["runtime"], info["isolation"]) == ("process", "none"), info
            assert info["limits"] == "rlimit" and info["engine"]["state"] == "up"
            assert '"jupyter-berth"' in http.get("lab").text  # the sidebar is installed and served
            sidebar_in_process_mode(base.rstrip("/"), token)
            for k in http.get("api/kernels").json():  # the notebook the browser started
                assert http.delete(f"api/kernels/{k['id']}").status_code == 204
            policy = http.get("berth/api/policy").json()
            assert policy["policy"]["max_kernels"] == 3 and policy["default_request"]["mem"] == 512 * 1024**2
            specs = http.get("api/kernelspecs").json()["kernelspecs"]
            name = next(
                n
                for n, s in specs.items()
                if s["spec"]["metadata"].get("jupyter_berth", {}).get("image", "").startswith("local/python:")
                and "preset" not in s["spec"]["metadata"]["jupyter_berth"]
            )
            assert {"berth-preset-small", "berth-preset-medium"} <= set(specs)
            kernel_id = http.post("api/kernels", json={"name": name, "path": ""}).json()["id"]
            status, out = asyncio.run(
                execute_over_websocket(
                    base,
                    token,
                    kernel_id,
                    "import os\nprint(os.environ['BERTH_RUNTIME'], os.environ['BERTH_ENFORCEMENT'])",
                )
            )
            assert status == "ok", out
            runtime, enforcement = out.split(maxsplit=1)
            assert runtime == "process" and enforcement.strip() == "rlimit"
            # 512 MiB, the policy default: a 1 GiB allocation fails and the kernel carries on
            status, out = asyncio.run(execute_over_websocket(base, token, kernel_id, "x = b'x' * (1 << 30)"))
            assert status == "error" and "MemoryError" in out
            (mine,) = http.get("berth/api/kernels").json()["kernels"]
            assert mine["kernel_id"] == kernel_id and mine["resources"]["mem"] == 512 * 1024**2
            assert http.delete(f"api/kernels/{kernel_id}").status_code == 204
            assert http.get("berth/api/kernels").json()["kernels"] == []
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    state = home / ".local" / "share" / "jupyter-berth" / "process-runtime"
    assert not list(state.glob("*.json")), "a process kernel outlived its shutdown"
    assert "Berth runtime" not in server_log.read_text()  # process mode was configured, not guessed
