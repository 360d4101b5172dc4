"""A foreign image through the REST API of a real jupyter_server: offered (inspected), refused with
the reason when it cannot serve, started with limits as uid 1000, and a notebook saved from its
kernel records its language and kernel and gets exactly that kernelspec back."""

from __future__ import annotations

import json
import os

import docker
import nbformat
import pytest

from jupyter_berth.runtime.labels import key
from tests.env_fixtures import REPO, foreign_images  # noqa: F401 - fixture
from tests.test_images_api import _call, _serve

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]  # a fresh machine builds the images first


@pytest.fixture
def jp_base_url():
    return "/"


@pytest.fixture
def jp_server_config(tmp_path, monkeypatch, foreign_images):
    monkeypatch.setenv("BERTH_USER", "ann")
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_berth.server": True}},
        "BerthService": {
            "data_dir": str(tmp_path / "berth-env-api"),
            "offered_images": [f"{REPO}/*"],
            "default_policy": {"max_cpu": 1, "max_mem": "1G", "default": {"cpu": 0.5, "mem": "512M"}},
        },
        "UsageTracker": {"sample_interval": 0},
        "ImageCatalog": {"offer_new_images": False, "admin_users": ["ann"]},
    }


def test_a_foreign_image_over_rest(jp_asyncio_loop, jp_serverapp, jp_fetch, jp_root_dir, foreign_images):
    from jupyter_berth.server import notebook_environment

    ref = foreign_images["good"]
    spec = f"berth-berthenv-foreign-ipykernel-{ref.rsplit(':', 1)[1]}-python3"
    client = docker.from_env()

    async def work():
        notebook_environment.register(jp_serverapp)
        os.chmod(jp_root_dir, 0o777)  # the kernel runs as uid 1000 in the notebook's directory
        code, body = await _call(jp_fetch, "POST", "images/offer", {"image": foreign_images["nokernel"]})
        assert code == 400 and body["message"].startswith(
            f"image: no Jupyter kernel found in {foreign_images['nokernel']}"
        )
        code, entry = await _call(jp_fetch, "POST", "images/offer", {"image": ref})
        assert code == 200 and entry["language"] == "python" and entry["state"] == "offered"
        code, listing = await _call(jp_fetch, "GET", "images")
        assert [i["ref"] for i in listing["images"]] == [ref]
        # a parameterized start: the image's default kernel, the request's limits, uid 1000
        code, model = await _call(
            jp_fetch, "POST", "kernels", {"image": ref, "resources": {"cpu": 0.5, "mem": "256M"}, "kernel": "python3"}
        )
        assert code == 201 and model["name"] == spec, model
        code, body = await _call(jp_fetch, "POST", "kernels", {"image": ref, "kernel": "julia"})
        assert code == 404 and "no kernel 'julia'" in body["message"] and "python3" in body["message"]
        try:
            (c,) = client.containers.list(filters={"label": f"{key('subject')}={model['id']}"})
            assert c.attrs["HostConfig"]["Memory"] == 256 * 1024**2 and c.attrs["HostConfig"]["CpuQuota"] == 50000
            assert c.attrs["Config"]["User"].split(":")[0] == "1000"
            top = c.top(ps_args="-o pid,uid,comm")
            uids = {p[top["Titles"].index("UID")] for p in top["Processes"]}
            assert uids == {"1000"}, top  # docker-init, the launcher's exec'd kernel: all uid 1000
        finally:
            await jp_fetch("api", "kernels", model["id"], method="DELETE")
        # a notebook saved from a kernel of that image records its language and kernel ...
        r = await jp_fetch(
            "api",
            "sessions",
            method="POST",
            body=json.dumps({"path": "r.ipynb", "name": "r.ipynb", "type": "notebook", "kernel": {"name": spec}}),
        )
        session = json.loads(r.body)
        try:
            await jp_fetch(
                "api",
                "contents",
                "r.ipynb",
                method="PUT",
                body=json.dumps({"type": "notebook", "format": "json", "content": nbformat.v4.new_notebook()}),
            )
            saved = json.loads((jp_root_dir / "r.ipynb").read_text())["metadata"]["berth"]["environment"]
            assert (saved["image"], saved["language"], saved["kernel"], saved["kernelspec"]) == (
                ref,
                "python",
                "python3",
                spec,
            )
            code, env = await _call(jp_fetch, "GET", f"images/environment/{session['kernel']['id']}")
            assert (env["language"], env["kernel"], env["kernelspec"]) == ("python", "python3", spec)
            # ... and opened again gets exactly that kernelspec
            code, answer = await _call(
                jp_fetch,
                "POST",
                "images/resolve",
                {k: saved[k] for k in ("image", "digest", "kernel", "language")},
            )
            assert answer["status"] == "available" and answer["kernelspec"] == spec
        finally:
            await jp_fetch("api", "sessions", session["id"], method="DELETE")

    _serve(jp_asyncio_loop, jp_serverapp, work)
