"""jupyter-scheduler with Berth as its backend: a real jupyter_server with both extensions, real Docker.

The REST calls are the ones JupyterLab's Create-job dialog and job list make (``scheduler/...``).
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from jupyter_berth.kernels import backend

pytest.importorskip("jupyter_scheduler")
pytestmark = [pytest.mark.docker]

LIMITS = (
    "import pathlib, json\n"
    "def read(*names):\n"
    "    for n in names:\n"
    "        p = pathlib.Path('/sys/fs/cgroup') / n\n"
    "        if p.exists(): return p.read_text().strip()\n"
    "print('MEM', read('memory/memory.limit_in_bytes', 'memory.max'))\n"
    "print('CPU', read('cpu/cpu.cfs_quota_us', 'cpu.max'))\n"
)


@pytest.fixture
def jp_root_dir(tmp_path):
    root = tmp_path / "root_dir"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    if os.getuid() == 0:
        os.chown(root, 1000, 1000)
    return root


@pytest.fixture(autouse=True)
def nbconvert_templates(jp_environ, monkeypatch):
    """pytest-jupyter isolates JUPYTER_PATH; nbconvert's HTML templates live under the base Python's share/."""
    import sys

    extra = os.path.join(sys.base_prefix, "share", "jupyter")
    monkeypatch.setenv("JUPYTER_PATH", os.pathsep.join(p for p in (os.environ.get("JUPYTER_PATH"), extra) if p))


@pytest.fixture
def jp_server_config(tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True, "jupyter_scheduler": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "stop_timeout": 2,
            "presets": {
                "small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"},
                "huge": {"cpu": 8, "mem": "1G", "display_name": "Huge"},
            },
            "default_policy": {"max_cpu": 2, "max_mem": "2G", "default": {"cpu": 1, "mem": "512M"}},
        },
        "UsageTracker": {"sample_interval": 0},
        "BerthExtensionApp": {"sync_kernelspecs": False},
        "SchedulerApp": {
            "db_url": f"sqlite:///{tmp_path / 'scheduler.sqlite'}",
            "environment_manager_class": "jupyter_berth.server.scheduler.BerthEnvironmentManager",
            "scheduler_class": "jupyter_berth.server.scheduler.BerthScheduler",
        },
        "BaseScheduler": {"staging_path": str(tmp_path / "staging")},
        "BaseTaskRunner": {"poll_interval": 1},
    }


def notebook(root, name: str, *sources: str, parameters: str | None = None) -> str:
    cells = []
    if parameters is not None:
        cells.append(
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "source": parameters,
                "outputs": [],
                "execution_count": None,
            }
        )
    cells += [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources
    ]
    (root / name).write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}))
    return name


def run(loop, serverapp, coro):
    async def go():
        await serverapp.extension_manager.start_all_extensions()
        return await coro

    async def remove_job_containers():  # a job outlives its server by design: remove what this test started
        service = backend._service  # the test's own (started by the scheduler's first call), never a default one
        if service is None:
            return
        for c in await service.runtime.list({"site": service.site_id, "kind": "job"}):
            await service.runtime.remove(c.id)

    try:
        return loop.run_until_complete(go())
    finally:
        loop.run_until_complete(remove_job_containers())
        loop.run_until_complete(backend.shutdown_embedded_service())


async def wait_for_status(fetch, job_id: str, wanted: set, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads((await fetch("scheduler", "jobs", job_id)).body)
        if job["status"] in wanted or time.monotonic() > deadline:
            return job
        await asyncio.sleep(0.5)


def test_environments_are_image_versions_and_presets_within_policy(jp_asyncio_loop, jp_serverapp, jp_fetch):
    async def check():
        r = await jp_fetch("scheduler", "runtime_environments")
        return json.loads(r.body)

    envs = run(jp_asyncio_loop, jp_serverapp, check())
    by_name = {e["name"]: e for e in envs}
    assert "berth/python:3.11" in by_name
    env = by_name["berth/python:3.11"]
    assert env["compute_types"] == ["default", "small"]  # "huge" (8 CPU) is over the 2-CPU policy
    assert [f["name"] for f in env["output_formats"]] == ["ipynb", "html"] and "Berth container" in env["description"]


def test_a_job_from_the_dialog_runs_as_a_berth_job_with_its_limits(
    jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir
):
    nb = notebook(jp_root_dir, "train.ipynb", LIMITS, "print('RESULT', alpha * 10)", parameters="alpha = 1")

    async def check():
        body = {
            "input_uri": nb,
            "name": "train",
            "runtime_environment_name": "berth/python:3.11",
            "runtime_environment_parameters": {"cpu": "0.5", "mem": "512M"},
            "compute_type": "default",
            "parameters": {"alpha": "0.5"},
            "output_formats": ["ipynb", "html"],
        }
        r = await jp_fetch("scheduler", "jobs", method="POST", body=json.dumps(body))
        job_id = json.loads(r.body)["job_id"]
        service = await backend.embedded_service()
        berth = await service.jobs.get(service_user(), job_id)
        assert berth.running and berth.resources["cpu"] == 0.5
        done = await wait_for_status(jp_fetch, job_id, {"COMPLETED", "FAILED"})
        records = await asyncio.to_thread(service.ledger.usage_records, None, None)
        return job_id, done, [(r.kind, r.end_reason) for r in records if r.subject == job_id]

    job_id, done, records = run(jp_asyncio_loop, jp_serverapp, check())
    assert done["status"] == "COMPLETED", done.get("status_message")
    assert records == [("job", "completed")]
    out_dir = jp_root_dir / "jobs" / f"train-{job_id}"
    files = {f["file_format"]: f["file_path"] for f in done["job_files"]}
    assert files["ipynb"] and files["html"] and files["input"], (files, done.get("status_message"))  # no download step
    out = json.loads((jp_root_dir / files["ipynb"]).read_text())
    text = "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
    assert f"MEM {512 * 1024 * 1024}" in text and "CPU 50000" in text and "RESULT 5.0" in text
    assert any("alpha = 0.5" in c["source"] for c in out["cells"])
    assert (out_dir / "job.log").exists()


def test_stop_from_the_job_list_cancels_the_berth_job(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir):
    nb = notebook(jp_root_dir, "long.ipynb", "import time\ntime.sleep(120)")

    async def check():
        body = {
            "input_uri": nb,
            "name": "long",
            "runtime_environment_name": "berth/python:3.11",
            "compute_type": "small",
        }
        job_id = json.loads((await jp_fetch("scheduler", "jobs", method="POST", body=json.dumps(body))).body)["job_id"]
        await jp_fetch("scheduler", "jobs", job_id, method="PATCH", body=json.dumps({"status": "STOPPED"}))
        job = json.loads((await jp_fetch("scheduler", "jobs", job_id)).body)
        service = await backend.embedded_service()
        return job, await service.jobs.get(service_user(), job_id)

    job, berth = run(jp_asyncio_loop, jp_serverapp, check())
    assert job["status"] == "STOPPED" and (berth.status, berth.reason) == ("cancelled", "cancelled")


def test_a_refused_job_fails_with_the_policy_message(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir):
    from tornado.httpclient import HTTPClientError

    nb = notebook(jp_root_dir, "big.ipynb", "pass")

    async def check():
        body = {"input_uri": nb, "name": "big", "runtime_environment_name": "berth/python:3.11",
                "runtime_environment_parameters": {"cpu": "4"}}  # fmt: skip
        with pytest.raises(HTTPClientError) as refused:
            await jp_fetch("scheduler", "jobs", method="POST", body=json.dumps(body))
        listed = json.loads((await jp_fetch("scheduler", "jobs")).body)["jobs"]
        return refused.value, listed

    refused, listed = run(jp_asyncio_loop, jp_serverapp, check())
    assert refused.code == 500 and "cpu:" in json.loads(refused.response.body)["message"]
    assert [(j["status"], j["status_message"].split(" ")[0]) for j in listed] == [("FAILED", "cpu:")]


def test_a_scheduled_job_runs_twice(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir):
    nb = notebook(jp_root_dir, "nightly.ipynb", "print('nightly run')")

    async def check():
        body = {
            "input_uri": nb,
            "name": "nightly",
            "runtime_environment_name": "berth/python:3.11",
            "compute_type": "small",
            "schedule": "* * * * * */5",  # croniter's seconds field: every 5 s
            "output_formats": ["ipynb"],
        }
        r = await jp_fetch("scheduler", "job_definitions", method="POST", body=json.dumps(body))
        definition = json.loads(r.body)["job_definition_id"]
        deadline = time.monotonic() + 150
        done = []
        while time.monotonic() < deadline:
            r = await jp_fetch("scheduler", "jobs", params={"job_definition_id": definition})
            done = [j for j in json.loads(r.body)["jobs"] if j["status"] == "COMPLETED"]
            if len(done) >= 2:
                break
            await asyncio.sleep(1)
        await jp_fetch("scheduler", "job_definitions", definition, method="PATCH", body=json.dumps({"active": False}))
        service = await backend.embedded_service()
        berth = [await service.jobs.get(service_user(), j["job_id"]) for j in done]
        return done, berth

    done, berth = run(jp_asyncio_loop, jp_serverapp, check())
    assert len(done) >= 2
    assert all(b.status == "completed" for b in berth) and len({b.job_dir for b in berth}) == len(berth)


def service_user() -> str:
    from jupyter_berth.service import standalone_user

    return standalone_user()[0]


def test_a_job_outlives_its_server_and_shows_its_end_at_the_next_look(
    jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir
):
    from jupyter_berth.runtime.docker import DockerRuntime

    nb = notebook(jp_root_dir, "overnight.ipynb", "import time\ntime.sleep(6)\nprint('done overnight')")
    scheduler = jp_serverapp.web_app.settings["scheduler"]

    async def check():
        body = {"input_uri": nb, "name": "overnight", "runtime_environment_name": "berth/python:3.11",
                "compute_type": "small", "output_formats": ["ipynb"]}  # fmt: skip
        job_id = json.loads((await jp_fetch("scheduler", "jobs", method="POST", body=json.dumps(body))).body)["job_id"]
        service = await backend.embedded_service()
        container = (await service.jobs.get(service_user(), job_id)).container_id
        # The server stops: its scheduler stops following, its embedded Berth service stops.
        for task in list(scheduler._followers.values()):
            task.cancel()
        await backend.shutdown_embedded_service()
        runtime = DockerRuntime()
        try:
            info = await runtime.wait(container, timeout=90)  # the job runs on without any server
            assert info.exit_code == 0
        finally:
            runtime.close()
        # The server is back: the first look at the job list brings the job's end in.
        listed = json.loads((await jp_fetch("scheduler", "jobs")).body)["jobs"]
        return job_id, listed

    job_id, listed = run(jp_asyncio_loop, jp_serverapp, check())
    (job,) = [j for j in listed if j["job_id"] == job_id]
    assert job["status"] == "COMPLETED", job.get("status_message")
    out = json.loads(
        (jp_root_dir / [f for f in job["job_files"] if f["file_format"] == "ipynb"][0]["file_path"]).read_text()
    )
    assert "done overnight" in "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
