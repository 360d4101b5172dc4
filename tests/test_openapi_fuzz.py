"""Schemathesis over the whole merged OpenAPI document (``berth/api/openapi.json``, every operation)
against a real jupyter_server with the berth extension, the embedded service and the real engine.

Checks: no 5xx, statuses and content types the document declares, and bodies that match its
schemas. The caller is an ordinary user (not an image admin: the admin routes answer 403 before
they could touch the shared engine's images; tests/test_images.py fuzzes them as an admin on a
catalog of its own). Bounded: a few examples per operation, one worker, a fixed seed; at most one
kernel runs at a time (the policy's ``max_kernels``), and the server shuts it down at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from jupyter_berth.kernels import backend

pytestmark = [pytest.mark.docker]

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
#: Examples per operation and phase (35 operations; the coverage phase adds its own boundary cases).
MAX_EXAMPLES = 5


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch):
    monkeypatch.setenv("BERTH_USER", "fuzzer")
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-data"),
            "presets": {"small": {"cpu": 0.25, "mem": "256M", "display_name": "Small"}},
            "default_policy": {
                "max_cpu": 1,
                "max_mem": "1G",
                "total_cpu": 1,
                "max_kernels": 1,
                "default": {"cpu": 0.25, "mem": "256M"},
            },
        },
        "UsageTracker": {"sample_interval": 0},
    }


def _st() -> str:
    st = Path(sys.executable).with_name("st")
    found = str(st) if st.exists() else shutil.which("st")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("schemathesis is not installed (pip install schemathesis)")
    pytest.skip("schemathesis is not installed")


def test_schemathesis_over_the_whole_document_finds_no_server_error(
    jp_asyncio_loop, jp_serverapp, jp_fetch, jp_http_port, jp_auth_header, tmp_path
):
    st = _st()

    async def work():
        await jp_serverapp.extension_manager.start_all_extensions()
        r = await jp_fetch("berth", "api", "openapi.json")  # the document as the server serves it
        doc = json.loads(r.body)
        assert len([op for path in doc["paths"].values() for op in path if op != "parameters"]) >= 35
        schema = tmp_path / "openapi.json"
        schema.write_text(json.dumps(doc))
        proc = await asyncio.create_subprocess_exec(
            st,
            "run",
            str(schema),
            "--url",
            f"http://127.0.0.1:{jp_http_port}{jp_serverapp.base_url.rstrip('/')}",
            "-H",
            f"Authorization: {jp_auth_header['Authorization']}",
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--workers",
            "1",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "60",
            "--no-color",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "NO_PROXY": "*"},
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 300)
        return proc.returncode, out.decode()

    try:
        code, output = jp_asyncio_loop.run_until_complete(work())
    finally:
        jp_asyncio_loop.run_until_complete(backend.shutdown_embedded_service())
    print(output[-3000:])
    assert code == 0, output[-8000:]
