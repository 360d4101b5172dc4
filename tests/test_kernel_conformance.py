"""External conformance: jupyter_kernel_test against a kernel started through BerthProvisioner,
and a real notebook executed by nbclient through a jupyter_server whose kernels are Berth kernels."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile

import jupyter_kernel_test
import nbformat
import pytest

from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import plan, sync
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

pytestmark = [pytest.mark.docker]


class BerthKernelConformance(jupyter_kernel_test.KernelTests):
    """The message protocol, as a client sees it, of a Berth container kernel."""

    kernel_name = "berth-preset-small"
    language_name = "python"
    file_extension = ".py"
    code_hello_world = "print('hello, world')"
    code_stderr = "import sys; print('test', file=sys.stderr)"
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", "print('hello, world')", "def f(x):\n  return x*2\n\n"]
    incomplete_code_samples = ["print('''hello", "def f(x):\n  x*2"]
    invalid_code_samples = ["import = 7q"]
    code_page_something = "zip?"
    code_generate_error = "raise ValueError('oops')"
    code_execute_result = [
        {"code": "1+2+3", "result": "6"},
        {"code": "[n*n for n in range(4)]", "result": "[0, 1, 4, 9]"},
    ]
    code_display_data = [
        {"code": "from IPython.display import HTML, display; display(HTML('<b>berth</b>'))", "mime": "text/html"}
    ]
    code_history_pattern = "1?2*"
    supported_history_operations = ("tail", "search")
    code_inspect_sample = "zip"
    code_clear_output = "from IPython.display import clear_output; clear_output()"

    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.mkdtemp(prefix="berth-conformance-")
        os.chmod(cls._tmp, 0o755)
        cls._env = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "BERTH_DATA_DIR")}
        os.environ["JUPYTER_PATH"] = os.path.join(cls._tmp, "jupyter")
        cls._service = BerthService(config=service_config(os.path.join(cls._tmp, "data")), runtime=DockerRuntime())

        async def prepare():
            await cls._service.start()
            images = await cls._service.images.catalog_view()
            sync(
                plan(images, cls._service.preset_list, cls._service.default_image),
                os.path.join(cls._tmp, "jupyter", "kernels"),
            )

        cls._loop = asyncio.new_event_loop()
        cls._loop.run_until_complete(prepare())
        backend._service = cls._service
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            backend._service = None
            leftovers = cls._loop.run_until_complete(cls._service.list_kernels())
            cls._loop.run_until_complete(cls._service.stop())
            cls._loop.close()
            for k, v in cls._env.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
            shutil.rmtree(cls._tmp, ignore_errors=True)
        assert leftovers == [], f"kernels left running after shutdown: {leftovers}"

    def test_runs_in_a_container_with_its_limits(self):
        self.flush_channels()
        reply, output = self.execute_helper(
            "print(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read().strip(), __import__('os').getuid())"
        )
        assert reply["content"]["status"] == "ok"
        text = "".join(m["content"].get("text", "") for m in output if m["msg_type"] == "stream")
        assert text.split() == [str(256 * 1024**2), "1000"]


NOTEBOOK_CELLS = [
    "import os, sys\nlimit = int(open('/sys/fs/cgroup/memory/memory.limit_in_bytes').read())\nprint(limit, os.getuid())",
    "with open('written-by-kernel.txt', 'w') as f:\n    f.write('from a container')\nsorted(os.listdir('.'))",
    "sum(i * i for i in range(10**5))",
]


def test_nbclient_runs_a_notebook_through_jupyter_server(
    tmp_path, jp_asyncio_loop, jp_data_dir, jp_serverapp, jp_root_dir, jp_fetch
):
    """nbclient executes a real notebook; its kernel is started through jupyter_server's REST API.

    A sync test driving pytest-jupyter's own loop (the server lives on it), so the service and
    the server share one event loop.
    """
    jp_asyncio_loop.run_until_complete(_nbclient_flow(tmp_path, jp_data_dir, jp_serverapp, jp_root_dir, jp_fetch))


async def _nbclient_flow(tmp_path, jp_data_dir, jp_serverapp, jp_root_dir, jp_fetch):
    from nbclient import NotebookClient

    service = BerthService(config=service_config(str(tmp_path / "berth-data")), runtime=DockerRuntime())
    await service.start()
    backend._service = service
    try:
        await _run_notebook(service, jp_data_dir, jp_serverapp, jp_root_dir, jp_fetch, NotebookClient)
    finally:
        backend._service = None
        await service.stop()


async def _run_notebook(berth_service, jp_data_dir, jp_serverapp, jp_root_dir, jp_fetch, NotebookClient):
    sync(
        plan(await berth_service.images.catalog_view(), berth_service.preset_list, berth_service.default_image),
        str(jp_data_dir / "kernels"),
    )
    os.chmod(jp_root_dir, 0o777)  # the kernel writes next to the notebook as uid 1000
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS]
    nb.metadata["kernelspec"] = {
        "name": "berth-python-3.11",
        "display_name": "Python 3.11 (Berth)",
        "language": "python",
    }
    km = jp_serverapp.kernel_manager
    # Started through the server's REST API, as JupyterLab does
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "berth-python-3.11", "path": ""}))
    kernel_id = json.loads(r.body)["id"]
    assert json.loads(r.body)["name"] == "berth-python-3.11"
    kernel_km = km.get_kernel(kernel_id)
    try:
        client = NotebookClient(nb, km=kernel_km, timeout=60, resources={"metadata": {"path": str(jp_root_dir)}})
        kc = kernel_km.client()
        client.kc = kc
        kc.start_channels()
        await kc.wait_for_ready(timeout=120)
        for index, cell in enumerate(nb.cells):
            await client.async_execute_cell(cell, index)
        first = nb.cells[0].outputs[0]["text"].split()
        assert first == [str(512 * 1024**2), "1000"]  # the policy default, in a container
        assert "'written-by-kernel.txt'" in nb.cells[1].outputs[0]["data"]["text/plain"]
        assert (jp_root_dir / "written-by-kernel.txt").read_text() == "from a container"
        assert nb.cells[2].outputs[0]["data"]["text/plain"] == str(sum(i * i for i in range(10**5)))
        kc.stop_channels()
    finally:
        await km.shutdown_kernel(kernel_id)
    assert await berth_service.list_kernels() == []
