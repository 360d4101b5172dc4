"""The release a stranger installs: ``python -m build``, then the wheel in a clean virtualenv.

The sdist and the wheel are built as a release would be (``python -m build``: the sdist
first, then the wheel from the unpacked sdist), their contents checked (the built JupyterLab
extension, the server extension's auto-enable file, the OpenAPI parts, the image recipes,
the migrations), and the wheel installed with its ``lab`` extra into a new virtualenv that
does not see this checkout. From there JupyterLab runs the sidebar end to end in Chromium
against real container kernels (scripts/ui-test.sh with ``BERTH_UI_JUPYTER`` pointing into
the virtualenv): what a new user's ``pip install jupyter-berth[lab]`` gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.slow, pytest.mark.docker]


def run(cmd: list[str], *, timeout: float, env: dict | None = None, cwd: Path = ROOT) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    # stderr's head and tail: a browser test prints its error first, then the server's log after it
    err = done.stderr if len(done.stderr) <= 6000 else f"{done.stderr[:3000]}\n[…]\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{err}"
    return done.stdout + done.stderr


def clean_env(**extra: str) -> dict:
    """The environment of a new user's shell: nothing points at this checkout or its Python."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "JUPYTER", "BERTH_"))}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    if not (ROOT / "core" / "labextension" / "package.json").exists():
        run(["bash", "scripts/build-labextension.sh"], timeout=600)
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=900, env=clean_env())
    (sdist,) = out.glob("jupyter_berth-*.tar.gz")
    (wheel,) = out.glob("jupyter_berth-*.whl")
    return {"sdist": sdist, "wheel": wheel}


def test_sdist_carries_the_built_extension_and_its_sources(dist):
    with tarfile.open(dist["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "setup.py",
        "setup.cfg",
        "MANIFEST.in",
        "core/labextension/package.json",
        "labextension/package.json",
        "labextension/src/index.ts",
        "labextension/schema/plugin.json",
        "scripts/build-labextension.sh",
        "jupyter-config/jupyter_server_config.d/jupyter_berth.json",
    ):
        assert needed in names, f"the sdist lacks {needed}"
    assert not any(n.startswith("labextension/node_modules/") for n in names)
    assert any(n.startswith("core/labextension/static/remoteEntry.") for n in names)


def test_wheel_carries_the_lab_extension_where_jupyterlab_finds_it(dist):
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = set(whl.namelist())
    data = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".data"))
    lab = f"{data}/data/share/jupyter/labextensions/jupyter-berth"
    for needed in (
        f"{lab}/package.json",
        f"{lab}/install.json",
        f"{lab}/schemas/jupyter-berth/plugin.json",
        f"{data}/data/etc/jupyter/jupyter_server_config.d/jupyter_berth.json",
        "jupyter_berth/labextension/package.json",
        "jupyter_berth/server/openapi/core.json",
        "jupyter_berth/ledger/migrations/alembic.ini",
        "jupyter_berth/kernels/provisioner.py",
        "jupyter_berth/hub/spawner.py",
    ):
        assert needed in names, f"the wheel lacks {needed}"
    assert any(n.startswith(f"{lab}/static/remoteEntry.") for n in names)
    assert any(n.startswith("jupyter_berth/imagebuild/recipes/python/") for n in names)
    assert not any("node_modules" in n for n in names)


def test_clean_virtualenv_install_shows_the_sidebar_and_runs_container_kernels(dist, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=120, env=clean_env())
    py, jupyter = venv / "bin" / "python", venv / "bin" / "jupyter"
    env = clean_env()
    run(
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"{dist['wheel']}[lab]"],
        timeout=900,
        env=env,
        cwd=tmp_path,
    )

    where = run(
        [str(py), "-c", "import jupyter_berth, os; print(os.path.dirname(jupyter_berth.__file__))"],
        timeout=60,
        env=env,
        cwd=tmp_path,
    ).strip()
    assert Path(where).is_relative_to(venv), f"the venv imports jupyter_berth from {where}, not from the wheel"
    labext = run([str(jupyter), "labextension", "list"], timeout=120, env=env, cwd=tmp_path)
    assert "jupyter-berth" in labext and "enabled" in labext and "OK" in labext, labext
    assert str(venv) in labext  # the prebuilt extension from the wheel's data files, not a dev link
    serverext = run([str(jupyter), "server", "extension", "list"], timeout=120, env=env, cwd=tmp_path)
    assert "jupyter_berth.server" in serverext and "enabled" in serverext, serverext

    # The sidebar end to end (Chromium), JupyterLab and the kernels' provisioner from the venv.
    ui_env = {**os.environ, "BERTH_UI_JUPYTER": str(jupyter)}
    ui_env.setdefault("BERTH_UI_SCREENSHOTS", "0")
    out = run(["bash", "scripts/ui-test.sh"], timeout=900, env=ui_env)
    assert "passed" in out, out[-2000:]
