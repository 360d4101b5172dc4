"""One configuration for a deployment: the ``berth`` command reads ``jupyter_berth_config.py`` from the
Jupyter config path, ``$BERTH_CONFIG`` and ``--config``, as the Berth service does; ``berth info`` says
which files and which ledger; and ``berth images offer``/``hide`` change what a running service offers
(a real jupyter_server with the berth extension and its embedded service, the real engine)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap

import docker
import pytest

from jupyter_berth.kernels import backend

IMAGE = "berth/python:3.11"


def berth(*args, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jupyter_berth.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
    )


def info(env: dict, *args) -> dict:
    done = berth("info", "--json", *args, env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def config_env(tmp_path):
    """A Jupyter config dir of its own (nothing from the machine's ~/.jupyter) and no $BERTH_* leaking in."""
    cfg = tmp_path / "jupyter-config"
    cfg.mkdir()
    env = {"JUPYTER_CONFIG_DIR": str(cfg), "BERTH_CONFIG": "", "BERTH_DB_URL": "", "BERTH_DATA_DIR": ""}
    return cfg, env


def test_a_config_file_in_the_jupyter_config_path_sets_the_ledger_of_every_command(tmp_path, config_env):
    cfg, env = config_env
    data = tmp_path / "from-path"
    (cfg / "jupyter_berth_config.py").write_text(f"c.BerthService.data_dir = {str(data)!r}\n")
    found = info(env)
    assert found["config_files"] == [str(cfg / "jupyter_berth_config.py")]
    assert found["ledger"] == str(data / "berth.sqlite") and found["data_dir"] == str(data)
    assert str(cfg) in found["config_path"]

    # berth db and berth usage act on that ledger (they used to have ledger settings of their own)
    done = berth("db", "upgrade", env=env)
    assert done.returncode == 0, done.stderr
    assert str(data / "berth.sqlite") in done.stdout and (data / "berth.sqlite").exists()
    done = berth("usage", "--format=json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == []

    # $BERTH_CONFIG comes after the path, --config after that, the command line after every file
    env_file, cli_file = tmp_path / "env_config.py", tmp_path / "cli_config.py"
    env_file.write_text(f"c.BerthService.db_url = 'sqlite:///{tmp_path / 'env.sqlite'}'\n")
    cli_file.write_text(f"c.BerthService.db_url = 'sqlite:///{tmp_path / 'cli.sqlite'}'\n")
    found = info({**env, "BERTH_CONFIG": str(env_file)})
    assert found["config_files"] == [str(cfg / "jupyter_berth_config.py"), str(env_file)]
    assert found["ledger"] == str(tmp_path / "env.sqlite") and found["ledger_from"] == "c.BerthService.db_url"
    found = info({**env, "BERTH_CONFIG": str(env_file)}, f"--config={cli_file}")
    assert found["config_files"][-1] == str(cli_file) and found["ledger"] == str(tmp_path / "cli.sqlite")
    found = info({**env, "BERTH_CONFIG": str(env_file)}, f"--config={cli_file}", f"--db-url=sqlite:///{tmp_path}/x.db")
    assert found["ledger"] == str(tmp_path / "x.db")
    # $BERTH_DB_URL is the ledger of every process when no file names one
    (cfg / "jupyter_berth_config.py").write_text("")
    assert info({**env, "BERTH_DB_URL": f"sqlite:///{tmp_path}/envurl.db"})["ledger"] == str(tmp_path / "envurl.db")


def test_a_named_config_file_must_exist_and_a_broken_one_stops_the_command(tmp_path, config_env):
    cfg, env = config_env
    done = berth("info", env={**env, "BERTH_CONFIG": str(tmp_path / "missing.py")})
    assert done.returncode != 0
    assert f"the config file {tmp_path / 'missing.py'} ($BERTH_CONFIG) does not exist" in done.stderr
    done = berth("usage", f"--config={tmp_path / 'nope.py'}", env=env)
    assert done.returncode != 0 and "(--config) does not exist" in done.stderr
    (cfg / "jupyter_berth_config.py").write_text("c.BerthService.data_dir = \n")
    done = berth("db", "current", env=env)
    assert done.returncode != 0 and "SyntaxError" in done.stderr and not (tmp_path / "berth.sqlite").exists()


# -- a running service and the CLI on the same configuration -------------------------------------------


@pytest.fixture
def test_tag():
    """A tag of the kernel image of this test's own (removed after; the image itself is shared)."""
    client = docker.from_env()
    try:
        image = client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"{IMAGE} is not built (berth images bootstrap)")
    tag = f"cfgtest-{secrets.token_hex(3)}"
    image.tag("berth/python", tag)
    yield f"berth/python:{tag}"
    client.images.remove(f"berth/python:{tag}", noprune=True)


@pytest.fixture
def jp_server_config(jp_config_dir, tmp_path, monkeypatch):
    """The server gets the extension only; every Berth setting is in jupyter_berth_config.py in the config path."""
    monkeypatch.setenv("BERTH_USER", "ann")
    monkeypatch.delenv("BERTH_CONFIG", raising=False)
    (jp_config_dir / "jupyter_berth_config.py").write_text(
        textwrap.dedent(f"""\
        c.BerthService.data_dir = {str(tmp_path / "deployment")!r}
        c.UsageTracker.sample_interval = 0
        c.BerthService.offered_images = ["berth/python:*"]
        c.BerthService.default_image = {IMAGE!r}
        c.ImageCatalog.admin_users = ["ann"]
        """)
    )
    return {"ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}}}


@pytest.mark.docker
def test_berth_images_offer_changes_what_a_running_service_offers(
    jp_asyncio_loop, jp_serverapp, jp_fetch, jp_config_dir, tmp_path, test_tag
):
    env = {"JUPYTER_CONFIG_DIR": str(jp_config_dir), "BERTH_USER": "ann", "BERTH_DB_URL": "", "BERTH_DATA_DIR": ""}

    async def offered() -> list[str]:
        r = await jp_fetch("berth", "api", "images")
        return [i["ref"] for i in json.loads(r.body)["images"]]

    async def run():
        await jp_serverapp.extension_manager.start_all_extensions()
        assert test_tag in await offered()
        service = await backend.embedded_service()
        assert service.ledger.url == str(tmp_path / "deployment" / "berth.sqlite")  # the server read the file
        assert info(env)["ledger"] == str(tmp_path / "deployment" / "berth.sqlite")  # the same ledger, no option

        done = berth("images", "hide", test_tag, env=env)
        assert done.returncode == 0, done.stderr
        assert test_tag not in await offered()
        done = berth("images", "offer", test_tag, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"{test_tag}: offered")
        assert test_tag in await offered()

    try:
        jp_asyncio_loop.run_until_complete(run())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())


def test_the_hub_service_reads_the_same_files(tmp_path, config_env, monkeypatch):
    """The hub's Berth service (BerthHubService) loads jupyter_berth_config.py from the config path, then
    $BERTH_CONFIG, then --config: the files and ledger `berth info` reports."""
    from jupyter_berth.hub.service_app import BerthHubService

    cfg, env = config_env
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (cfg / "jupyter_berth_config.py").write_text(
        f"c.BerthService.data_dir = {str(tmp_path / 'hub')!r}\nc.BerthHubService.user_volume = 'vol-{{username}}'\n"
    )
    extra = tmp_path / "extra.py"
    extra.write_text("c.BerthHubService.port = 12345\n")
    monkeypatch.setenv("BERTH_CONFIG", str(extra))
    app = BerthHubService()
    app.initialize([])
    assert app.loaded_config_files == [str(cfg / "jupyter_berth_config.py"), str(extra)]
    assert app.config.BerthService.data_dir == str(tmp_path / "hub") and app.port == 12345
    assert app.user_volume == "vol-{username}"
    assert info(env | {"BERTH_CONFIG": str(extra)})["config_files"] == app.loaded_config_files
