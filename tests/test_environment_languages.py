"""Languages and stacks: the R kernel passes jupyter_kernel_test with its limits enforced, the Bash
kernel runs, and two versions of one stack run side by side, each reporting its own versions.

The R and Bash images come from Berth's offline recipes (``berth images bootstrap --all`` builds
them; :func:`tests.env_fixtures.environment_image` builds whichever is missing, cached by recipe
hash). The stack versions are small ones built by a fixture on the foreign ipykernel image; the
SciPy and JAX recipes are built on request (``--recipe=scipy-2024`` …), not by the suite.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile

import jupyter_kernel_test
import pytest

from jupyter_berth.kernels import backend
from jupyter_berth.kernelspecs import image_kernel_name, plan, sync
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService
from tests.env_fixtures import env_service, env_service_config, environment_image, foreign_images, stack_images  # noqa: F401 - fixtures
from tests.test_environments import kernelspecs, start, stop
from tests.test_provisioner import run

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a fresh machine builds the images first

R_LIMITS = (
    "cat(readLines('/sys/fs/cgroup/memory/memory.limit_in_bytes'), "
    "readLines('/sys/fs/cgroup/cpu/cpu.cfs_quota_us'), readLines('/sys/fs/cgroup/pids/pids.max'), "
    "system('id -u', intern = TRUE), sep = ' ')"
)


class BerthIRkernelConformance(jupyter_kernel_test.KernelTests):
    """IRkernel from Debian's r-cran-irkernel in a plain image (berth/r:4.2), through Berth's launcher,
    under a preset of 0.5 CPU, 256 MiB and 128 processes."""

    kernel_name = "berth-preset-r-small-ir"
    language_name = "R"
    file_extension = ".r"
    code_hello_world = 'print("hello, world")'
    code_stderr = 'message("test")'
    completion_samples = [{"text": "zi", "matches": {"zip"}}]
    complete_code_samples = ["1", 'print("hello, world")', "f <- function(x) {\n  x*2\n}"]
    incomplete_code_samples = ['print("hello', "f <- function(x) {\n  x*2"]
    code_generate_error = 'stop("oops")'
    # (IRkernel shows values as display_data, not execute_result: no code_execute_result samples)
    code_display_data = [{"code": 'IRdisplay::display_html("<b>berth</b>")', "mime": "text/html"}]

    @classmethod
    def setUpClass(cls):
        image = environment_image("r")
        cls._tmp = tempfile.mkdtemp(prefix="berth-r-conformance-")
        os.chmod(cls._tmp, 0o755)
        cls._env = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.path.join(cls._tmp, "jupyter")
        config = env_service_config(os.path.join(cls._tmp, "data"))
        config.BerthService.presets = {
            "r-small": {"cpu": 0.5, "mem": "256M", "pids": 128, "image": image, "display_name": "R small"}
        }
        cls._service = BerthService(config=config, runtime=DockerRuntime())

        async def prepare():
            await cls._service.start()
            await cls._service.images.offer_image("admin", (), image)
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
            for c in cls._loop.run_until_complete(cls._service.runtime.list({"site": cls._service.site_id})):
                cls._loop.run_until_complete(cls._service.runtime.remove(c.id))
            cls._loop.run_until_complete(cls._service.stop())
            cls._loop.close()
            if cls._env is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = cls._env
            shutil.rmtree(cls._tmp, ignore_errors=True)

    def test_limits_and_user_are_enforced(self):
        self.flush_channels()
        reply, output = self.execute_helper(code=R_LIMITS)
        self.assertEqual(reply["content"]["status"], "ok")
        text = "".join(m["content"].get("text", "") for m in output if m["msg_type"] == "stream")
        self.assertEqual(text.split(), [str(256 * 1024**2), "50000", "128", "1000"])

    def test_language_info(self):
        self.flush_channels()
        self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=10)
        self.assertEqual(reply["content"]["language_info"]["name"], "R")


async def test_the_bash_kernel_runs_beside_the_python_kernel_of_its_image(env_service, workdir, tmp_path, monkeypatch):
    image = await asyncio.to_thread(environment_image, "bash")
    entry = await env_service.images.offer_image("admin", (), image)
    kernels = {k["name"]: k for k in json.loads(entry["labels"]["kernels"])}
    assert kernels["bash"]["language"] == "bash" and kernels["bash"]["language_version"].startswith("5.")
    assert "bash_kernel" in kernels["bash"]["frameworks"] and kernels["python3"]["language"] == "python"
    specs = await kernelspecs(env_service, tmp_path, monkeypatch)
    assert specs["berth-bash-5.2-bash"]["language"] == "bash"
    assert specs["berth-bash-5.2-python3"]["language"] == "python"
    km, kc = await start(workdir, "berth-bash-5.2-bash", request={"cpu": 0.5, "mem": "256M"})
    outputs = []
    try:
        reply = await kc.execute_interactive(
            "echo $((6*7)) $(id -u) $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)",
            output_hook=outputs.append,
            timeout=30,
        )
        assert reply["content"]["status"] == "ok"
    finally:
        await stop(km, kc)
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    assert text.split() == ["42", "1000", str(256 * 1024**2)]


async def test_two_versions_of_one_stack_run_side_by_side(env_service, foreign_images, workdir, tmp_path, monkeypatch):
    """Two versions of one stack (numpy 1 and 2 on a plain ipykernel image) offered at once, one kernel
    on each at the same time: the catalog lists each version's numpy, each kernel imports its own."""
    refs = await asyncio.to_thread(stack_images, foreign_images["good"])
    found = {}
    for numpy, ref in refs.items():
        entry = await env_service.images.offer_image("admin", (), ref)
        (k,) = json.loads(entry["labels"]["kernels"])
        assert k["frameworks"]["numpy"] == numpy and f"numpy {numpy}" in entry["frameworks"]
        found[numpy] = image_kernel_name(ref) + "-python3"
    await kernelspecs(env_service, tmp_path, monkeypatch)
    small = {"cpu": 0.5, "mem": "384M"}
    (km1, kc1), (km2, kc2) = await asyncio.gather(*(start(workdir, name, request=small) for name in found.values()))
    try:
        code = "import numpy; print(numpy.__version__)"
        (_, out1, err1), (_, out2, err2) = await asyncio.gather(run(kc1, code), run(kc2, code))
        assert [out1.strip(), out2.strip()] == list(found), (err1, err2)
        assert len(await env_service.list_kernels()) == 2
    finally:
        await asyncio.gather(stop(km1, kc1), stop(km2, kc2))
