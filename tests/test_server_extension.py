"""The ``berth`` jupyter_server extension: kernelspecs are synced when the server starts."""

from __future__ import annotations

import json

import pytest

from jupyter_berth.kernels import backend

pytestmark = [pytest.mark.docker]


@pytest.fixture
def jp_server_config(tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "presets": {"small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"}},
        },
        "UsageTracker": {"sample_interval": 0},
    }


def test_kernelspecs_synced_on_server_start(jp_asyncio_loop, jp_serverapp, jp_fetch):
    async def check():
        # What ServerApp._post_start does once the loop runs (pytest-jupyter does not call it).
        await jp_serverapp.extension_manager.start_all_extensions()
        for _ in range(3):
            r = await jp_fetch("api", "kernelspecs")
            specs = json.loads(r.body)["kernelspecs"]
            if "berth-preset-small" in specs:
                break
            await __import__("asyncio").sleep(0.1)
        assert {"berth-python-3.11", "berth-preset-small"} <= set(specs)
        meta = specs["berth-preset-small"]["spec"]["metadata"]
        assert meta["kernel_provisioner"] == {
            "provisioner_name": "berth",
            "config": {"preset": "small", "image": "berth/python:3.11"},
        }
        assert specs["berth-python-3.11"]["spec"]["display_name"] == "Python 3.11 (Berth)"

    try:
        jp_asyncio_loop.run_until_complete(check())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())


def test_the_idle_culler_ends_a_kernel_as_culled_a_request_as_shutdown(jp_asyncio_loop, jp_serverapp, tmp_path):
    """jupyter_server's idle culler and a user's shutdown take the same path; the ledger tells them apart."""
    import asyncio
    from datetime import timedelta

    from jupyter_server._tz import utcnow

    km = jp_serverapp.kernel_manager

    async def check():
        await jp_serverapp.extension_manager.start_all_extensions()
        service = await backend.embedded_service()
        idle = await km.start_kernel(kernel_name="berth-python-3.11", path=str(tmp_path))
        asked = await km.start_kernel(kernel_name="berth-python-3.11", path=str(tmp_path))
        km.cull_idle_timeout = 60
        km.get_kernel(asked).last_activity = utcnow()
        km.get_kernel(idle).last_activity = utcnow() - timedelta(seconds=600)
        await km.cull_kernel_if_idle(asked)  # active a moment ago: kept
        assert asked in km
        await km.cull_kernel_if_idle(idle)
        assert idle not in km
        await km.shutdown_kernel(asked)
        records = await asyncio.to_thread(service.ledger.usage_records, None, None)
        return {r.subject: r.end_reason for r in records}

    try:
        reasons = jp_asyncio_loop.run_until_complete(check())
        assert sorted(reasons.values()) == ["culled", "shutdown"], reasons
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())
