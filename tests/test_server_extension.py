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
        "BerthService": {"data_dir": str(tmp_path / "berth-data"), "sample_interval": 0,
                         "presets": {"small": {"cpu": 0.5, "mem": "256M", "display_name": "Small"}}},
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
        assert meta["kernel_provisioner"] == {"provisioner_name": "berth",
                                              "config": {"preset": "small", "image": "berth/python:3.11"}}
        assert specs["berth-python-3.11"]["spec"]["display_name"] == "Python 3.11 (Berth)"

    try:
        jp_asyncio_loop.run_until_complete(check())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())
