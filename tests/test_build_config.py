"""The build host's pip configuration and CA certificates serve the image build only (issue 20,
item 11): no layer of a built image holds them, unless the admin asked for run-time settings.

The pure part serves and fetches the build files as a build does. The engine part builds the
kernel recipe under a test-only tag (never the shared berth/python:3.11) with a pip.conf that
carries a sentinel, then reads every layer of the saved image.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import uuid

import docker
import pytest

from jupyter_berth.errors import BerthError
from jupyter_berth.imagebuild import build_files
from jupyter_berth.imagebuild.bootstrap import DEFAULT_EXTRA_CA_DIR, HOST_PIP_CONF, RECIPES_DIR, bootstrap_image
from jupyter_berth.imagebuild.environments import RECIPES, build_on_base


def test_build_files_are_served_for_the_build_and_gone_after(tmp_path):
    ca_dir = tmp_path / "ca"
    ca_dir.mkdir()
    (ca_dir / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = https://user:secret@index.example/simple\n")
    build_files.write_fetch_script(str(tmp_path / "ctx"))
    script = tmp_path / "ctx" / "context" / build_files.FETCH_SCRIPT
    with build_files.served([str(ca_dir / "proxy.crt")], str(ca_dir), str(pip_conf)) as args:
        url = args[build_files.BUILD_ARG]
        assert url.startswith("http://127.0.0.1:") and "secret" not in url
        subprocess.run([sys.executable, str(script), url, str(tmp_path / "fetched")], check=True)
    fetched = tmp_path / "fetched"
    assert (fetched / "pip.conf").read_text() == pip_conf.read_text()
    env = (fetched / "env.sh").read_text()
    assert f"PIP_CONFIG_FILE={fetched}/pip.conf" in env and f"PIP_CERT={fetched}/ca-bundle.pem" in env
    assert "QUJD" in (fetched / "ca-bundle.pem").read_text()
    # apt (the R recipe) trusts the same bundle through a config of its own in the fetched folder
    assert f"APT_CONFIG={fetched}/apt.conf" in env
    assert f'Acquire::https::CAInfo "{fetched}/ca-bundle.pem";' in (fetched / "apt.conf").read_text()
    # after the build nothing answers; a build without the files goes on without them
    out = subprocess.run(
        [sys.executable, str(script), url, str(tmp_path / "late")], capture_output=True, text=True, check=True
    )
    assert "building without them" in out.stderr and (tmp_path / "late" / "env.sh").read_text().strip() == ""
    with build_files.served([], None, None) as args:
        assert args == {build_files.BUILD_ARG: ""}


def _layers_containing(image, needles: dict[str, bytes]) -> dict[str, list[str]]:
    """For each needle, the layers (and file names) of the saved image whose bytes contain it."""
    blob = io.BytesIO()
    for chunk in image.save(named=True):
        blob.write(chunk)
    blob.seek(0)
    found = {name: [] for name in needles}
    with tarfile.open(fileobj=blob) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()
            if not data.startswith(b"{") and member.name.endswith((".tar", "layer.tar")) or "/blobs/" in member.name:
                try:
                    with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                        for f in layer.getmembers():
                            if f.isfile():
                                content = layer.extractfile(f).read()
                                for name, needle in needles.items():
                                    if needle in content or needle in f.name.encode():
                                        found[name].append(f"{member.name}:{f.name}")
                    continue
                except tarfile.TarError:
                    pass
            for name, needle in needles.items():  # the config and manifest (history, build args)
                if needle in data:
                    found[name].append(member.name)
    return found


def _build_only_files(tmp_path) -> tuple[str, dict[str, bytes]]:
    """A pip.conf for the build (the host's, plus a sentinel) and what no layer may hold: the sentinel
    and a line of each build CA's body (which no Debian bundle has)."""
    ca_files = (
        sorted(p for p in os.listdir(DEFAULT_EXTRA_CA_DIR) if p.endswith(".crt"))
        if os.path.isdir(DEFAULT_EXTRA_CA_DIR)
        else []
    )
    sentinel = f"berth-build-only-{uuid.uuid4().hex}"
    pip_conf = tmp_path / "pip.conf"
    host = open(HOST_PIP_CONF).read() if os.path.isfile(HOST_PIP_CONF) else "[global]\n"
    pip_conf.write_text(f"# {sentinel}\n{host}")
    needles = {"pip.conf": sentinel.encode()}
    for name in ca_files:
        body = [line for line in open(os.path.join(DEFAULT_EXTRA_CA_DIR, name)).read().splitlines() if line][2]
        needles[name] = body.encode()
    return str(pip_conf), needles


@pytest.mark.docker
@pytest.mark.slow
def test_a_built_image_holds_no_copy_of_the_hosts_pip_conf_or_ca_unless_asked(tmp_path):
    pip_conf, needles = _build_only_files(tmp_path)
    client = docker.from_env()
    repository, tag = "berth-test/buildconf", uuid.uuid4().hex[:10]
    built = []
    try:
        result = bootstrap_image(
            repository, tag, progress=lambda _l: None, pip_conf=pip_conf, extra_ca_dir=DEFAULT_EXTRA_CA_DIR
        )
        built.append(result.image_id)
        image = client.images.get(result.image_id)
        assert _layers_containing(image, needles) == {name: [] for name in needles}
        out = client.containers.run(
            result.image_id, ["sh", "-c", "ls /etc/pip.conf /tmp/berth-build 2>&1; true"], remove=True, entrypoint=[]
        )
        assert b"No such file" in out and out.count(b"No such file") == 2, out

        # the admin asks for a run-time pip.conf: that one, and only that one, is in the image
        wanted = tmp_path / "kernel-pip.conf"
        wanted.write_text("[global]\nindex-url = https://mirror.example/simple\n")
        asked = bootstrap_image(
            repository,
            tag,
            progress=lambda _l: None,
            pip_conf=pip_conf,
            extra_ca_dir=DEFAULT_EXTRA_CA_DIR,
            image_pip_conf=str(wanted),
        )
        built.append(asked.image_id)
        out = client.containers.run(asked.image_id, ["cat", "/etc/pip.conf"], remove=True, entrypoint=[])
        assert out.decode() == wanted.read_text()
        assert _layers_containing(client.images.get(asked.image_id), needles) == {name: [] for name in needles}
    except BerthError as e:
        pytest.fail(f"the test image did not build: {e.message}\n{e.log_message}")
    finally:
        for image_id in reversed(built):
            try:
                client.images.remove(image_id, force=True)
            except docker.errors.APIError:
                pass
        client.close()


#: what each environment recipe must have installed (its kernelspec)
ENVIRONMENT_CHECKS = {
    "bash": "/opt/bash-kernel/share/jupyter/kernels/bash/kernel.json",
    "r": "/usr/share/jupyter/kernels/ir/kernel.json",
}


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ENVIRONMENT_CHECKS))
def test_an_environment_recipe_holds_no_copy_of_the_hosts_pip_conf_or_ca(tmp_path, name):
    """The R recipe's apt and the Bash recipe's pip reach their sources through the build files
    (apt trusting the build CA for its one step), and no layer keeps them."""
    pip_conf, needles = _build_only_files(tmp_path)
    recipe = RECIPES[name]
    client = docker.from_env()
    reference = f"berth-test/buildconf-{name}:{uuid.uuid4().hex[:10]}"
    try:
        result = build_on_base(
            os.path.join(RECIPES_DIR, recipe.folder),
            reference,
            buildargs=recipe.buildargs,
            progress=lambda _l: None,
            pip_conf=pip_conf,
            extra_ca_dir=DEFAULT_EXTRA_CA_DIR,
        )
        image = client.images.get(result.image_id)
        assert _layers_containing(image, needles) == {n: [] for n in needles}
        out = client.containers.run(
            result.image_id,
            # echo: the kernelspec ends without a newline, and the engine may drop an unterminated last line
            ["sh", "-c", f"ls /etc/pip.conf /tmp/berth-build 2>&1; cat {ENVIRONMENT_CHECKS[name]}; echo; true"],
            remove=True,
            entrypoint=[],
        )
        assert out.count(b"No such file") == 2 and b'"argv"' in out, out
    except BerthError as e:
        pytest.fail(f"the test image did not build: {e.message}\n{e.log_message}")
    finally:
        try:
            client.images.remove(reference, force=True)
        except docker.errors.APIError:
            pass
        client.close()
