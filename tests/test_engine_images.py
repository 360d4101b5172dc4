"""The container engine set-up and the registry-free kernel image.

Docker tests run against the real engine and the real ``berth/python:3.11``
image. The module fixture builds the image once if it is missing (about 90 s on
a fresh machine); nothing here forces a rebuild from scratch.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time

import docker
import pytest

from jupyter_berth.engine import ALREADY_RUNNING, engine_client, ensure_engine
from jupyter_berth.errors import EngineError
from jupyter_berth.imagebuild.baseimage import LABEL_PREFIX, BaseSpec, host_apt_sources
from jupyter_berth.imagebuild.bootstrap import (
    DEFAULT_KERNEL_IMAGE,
    bootstrap_image,
    recipe_dir,
    recipe_hash,
)

# ---------------------------------------------------------------- no engine needed


def test_unreachable_engine_names_address_and_fix(monkeypatch, tmp_path):
    sock = tmp_path / "nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    with pytest.raises(EngineError) as info:
        engine_client(timeout=2)
    assert str(sock) in info.value.message
    assert "berth engine up" in info.value.message
    assert info.value.status == 503


def test_remote_engine_is_never_started_locally(monkeypatch):
    # Port 9 on loopback (discard) has no Docker engine; berth must not start a local dockerd for it.
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    with pytest.raises(EngineError, match="berth only starts a local dockerd"):
        ensure_engine(log=lambda _line: None, wait=1)


def test_host_apt_sources_reads_deb822_and_maps_suite(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: trixie trixie-updates\nComponents: main contrib\n\n"
        "Types: deb-src\nURIs: http://mirror.example/debian\nSuites: trixie\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: trixie-security\n"
        "Components: main\n"
    )
    assert host_apt_sources("bookworm", etc_apt=str(tmp_path)) == (
        "deb http://mirror.example/debian bookworm main contrib",
        "deb http://mirror.example/debian bookworm-updates main contrib",
        "deb http://mirror.example/debian-security bookworm-security main",
    )


def test_host_apt_sources_legacy_list_and_fallback(tmp_path):
    assert host_apt_sources("bookworm", etc_apt=str(tmp_path)) == ("deb http://deb.debian.org/debian bookworm main",)
    (tmp_path / "sources.list").write_text("# old style\ndeb [arch=amd64] http://ftp.example/debian bookworm main\n")
    assert host_apt_sources("bookworm", etc_apt=str(tmp_path)) == ("deb http://ftp.example/debian bookworm main",)


def test_recipe_hash_covers_certificates_pip_conf_and_base(tmp_path):
    path = recipe_dir("python")
    base = BaseSpec(sources=("deb http://deb.debian.org/debian bookworm main",))
    plain = recipe_hash(path, [], None, base, None)
    assert plain == recipe_hash(path, [], None, base, None)
    cert = tmp_path / "corp.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text("[global]\nindex-url = https://pypi.example/simple\n")
    other_base = BaseSpec(sources=("deb http://mirror.example/debian bookworm main",))
    variants = {
        plain,
        recipe_hash(path, [str(cert)], None, base, str(tmp_path)),
        recipe_hash(path, [], str(pip_conf), base, None),
        recipe_hash(path, [], None, other_base, None),
    }
    assert len(variants) == 4


def test_missing_extra_ca_dir_is_refused_with_the_fix():
    with pytest.raises(EngineError, match="does not exist"):
        bootstrap_image(extra_ca_dir="/nonexistent/berth-ca", progress=lambda _l: None)


# ---------------------------------------------------------------- real engine

docker_only = pytest.mark.docker


@pytest.fixture(scope="module")
def kernel_image():
    """The default kernel image, built once if missing (never forced)."""
    ensure_engine(log=lambda _line: None)
    result = bootstrap_image(progress=lambda _line: None)
    return result


@docker_only
def test_ensure_engine_answers():
    status = ensure_engine(log=lambda _line: None)
    assert status.how == ALREADY_RUNNING
    client = engine_client()
    assert client.ping() is True
    assert client.version()["Version"] == status.version


@docker_only
def test_bootstrap_second_run_is_a_fast_no_op(kernel_image):
    lines: list[str] = []
    started = time.monotonic()
    again = bootstrap_image(progress=lines.append)
    elapsed = time.monotonic() - started
    assert again.cached is True
    assert elapsed < 1.0, f"cached bootstrap took {elapsed:.2f} s"
    assert again.image_id == kernel_image.image_id
    assert any("up to date" in line for line in lines)
    # A different CA folder changes the recipe hash, but --if-missing accepts the image as it is.
    loaded = bootstrap_image(progress=lines.append, extra_ca_dir=None, if_missing=True)
    assert loaded.cached is True and loaded.image_id == kernel_image.image_id


@docker_only
def test_image_labels(kernel_image):
    labels = engine_client().images.get(DEFAULT_KERNEL_IMAGE).labels
    meta = {k[len(LABEL_PREFIX) :]: v for k, v in labels.items() if k.startswith(LABEL_PREFIX)}
    assert meta["kind"] == "kernel"
    assert meta["language"] == "python"
    assert meta["version"] == "3.11"
    assert meta["display_name"] == "Python 3.11"
    assert meta["gpu"] == "false"
    assert meta["recipe_hash"] == kernel_image.recipe_hash
    assert meta["frameworks"].startswith("ipykernel ")
    assert float(meta["min_cpu"]) > 0 and meta["min_memory"]


@docker_only
def test_image_user_python_and_launcher(kernel_image):
    script = (
        "id -u; id -g; pwd; "
        "python -c 'import ipykernel, sys; print(sys.prefix)'; "
        "test -x /usr/local/bin/berth-kernel && echo launcher-ok; "
        "test -d /home/jovyan/folders -a -O /home/jovyan/folders && echo folders-ok; "
        "test -d /home/jovyan/.ipython/profile_default/startup && echo startup-ok"
    )
    out = (
        engine_client()
        .containers.run(DEFAULT_KERNEL_IMAGE, ["sh", "-c", script], remove=True, network_mode="none")
        .decode()
        .split()
    )
    assert out == ["1000", "100", "/home/jovyan", "/opt/venv", "launcher-ok", "folders-ok", "startup-ok"]


@docker_only
def test_launcher_without_connection_fails_clearly(kernel_image):
    with pytest.raises(docker.errors.ContainerError) as info:
        engine_client().containers.run(
            DEFAULT_KERNEL_IMAGE, ["berth-kernel"], remove=True, network_mode="none", stderr=True
        )
    assert info.value.exit_status == 2
    assert b"BERTH_CONNECTION is not set" in info.value.stderr


@docker_only
def test_kernel_in_image_answers_kernel_info(kernel_image):
    from jupyter_client.blocking import BlockingKernelClient

    ports = dict(zip(("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"), range(50101, 50106)))
    connection = dict(
        ports, ip="0.0.0.0", transport="tcp", key=secrets.token_hex(16), signature_scheme="hmac-sha256", kernel_name=""
    )
    client = engine_client()
    container = client.containers.run(
        DEFAULT_KERNEL_IMAGE,
        ["berth-kernel"],
        detach=True,
        environment={"BERTH_CONNECTION": json.dumps(connection)},
        labels={LABEL_PREFIX + "test": "test_engine_images"},
    )
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        kc = BlockingKernelClient()
        kc.load_connection_info(dict(connection, ip=address))
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=120)
            reply = kc.kernel_info(reply=True, timeout=10)
            assert reply["content"]["status"] == "ok"
            assert reply["content"]["language_info"]["name"] == "python"
            outputs: list[str] = []
            code = (
                "import os, stat; from ipykernel.kernelapp import IPKernelApp; "
                "f = IPKernelApp.instance().connection_file; "
                "print(os.environ.get('BERTH_CONNECTION'), oct(stat.S_IMODE(os.stat(f).st_mode)), "
                "f.startswith('/tmp/'))"
            )
            kc.execute_interactive(
                code,
                timeout=15,
                output_hook=lambda msg: (
                    outputs.append(msg["content"].get("text", "")) if msg["msg_type"] == "stream" else None
                ),
            )
            assert "".join(outputs).split() == ["None", "0o600", "True"]
        finally:
            kc.stop_channels()
    finally:
        container.remove(force=True)


@docker_only
def test_cli_images_list_shows_the_kernel_image(kernel_image):
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_berth.cli.app", "images", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    kernel = [r for r in rows if r["reference"] == DEFAULT_KERNEL_IMAGE]
    assert kernel and kernel[0]["kind"] == "kernel"


@docker_only
def test_cli_engine_status_and_missing_subcommand():
    def berth(*args):
        return subprocess.run(
            [sys.executable, "-m", "jupyter_berth.cli.app", *args], capture_output=True, text=True, timeout=60
        )

    status = berth("engine", "status")
    assert status.returncode == 0, status.stderr
    assert "Docker" in status.stdout and "berth:" in status.stdout
    bare = berth("images")
    assert bare.returncode != 0
    assert "bootstrap" in bare.stdout and "list" in bare.stdout
