"""Jobs, the start queue and budgets in hub mode, with real parts: a JupyterHub subprocess with the Berth
service it manages (tests/hub_process.py), users' tokens from the hub, the real Docker engine, and the
user's server as a real ``jupyter_server`` process with the Berth extension in hub mode (the environment
BerthSpawner gives it: ``BERTH_SERVICE_URL``, the user's ``JUPYTERHUB_API_TOKEN``), run here on the host
so that it runs this tree's code without rebuilding the shared single-user image.

A job is sent through the user's server (the notebook in the request), the server is stopped while the
job runs, the job completes at the service all the same, and the user's next server lists it with its
output. The service's ``berth/api/queue``, ``budget`` and ``jobs`` refuse anonymous and foreign callers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.hub_process import HubProcess, free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(400)]


def notebook(*sources: str) -> dict:
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": s} for s in sources
    ]
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return {"nbformat": 4, "nbformat_minor": 5, "metadata": meta, "cells": cells}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = HubProcess(tmp_path_factory.mktemp("hubjobs"))
    h.start()
    try:
        h.tokens = {user: h.new_token(user) for user in ("alice", "bob")}
        h.wait_for_service(h.tokens["alice"])
        yield h
    finally:
        h.stop()


def call(hub, user, method: str, path: str, body=None, *, token: str | None = None):
    """``berth/api/<path>`` of the hub's service as ``user`` (None and no token: anonymous)."""
    headers = {"Authorization": f"token {token or hub.tokens[user]}"} if (token or user) else {}
    content = json.dumps(body) if body is not None else None
    r = httpx.request(method, hub.service_url + "berth/api/" + path, headers=headers, content=content, timeout=60)
    return r.status_code, (r.json() if r.content else None)


class UserServer:
    """``jupyter server`` for ``user`` in hub mode, as BerthSpawner configures a user's server."""

    def __init__(self, hub: HubProcess, user: str, root: Path, extra_args: tuple[str, ...] = ()):
        self.hub, self.user, self.root, self.extra_args = hub, user, root, tuple(extra_args)
        also = ', "jupyter_scheduler": True' if extra_args else ""  # the extension the extra arguments configure
        self.extensions = '{"jupyter_berth.server": True' + also + "}"
        self.port, self.token = free_port(), uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen | None = None

    def start(self) -> UserServer:
        self.root.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "BERTH_SERVICE_URL": self.hub.service_url,
            "JUPYTERHUB_API_TOKEN": self.hub.tokens[self.user],
            "JUPYTERHUB_USER": self.user,
            "JUPYTER_RUNTIME_DIR": str(self.root / ".runtime"),
        }
        self.log = open(self.root.parent / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
             f"--port={self.port}", f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
             f"--ServerApp.jpserver_extensions={self.extensions}", *self.extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "api/status", params={"token": self.token}, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None and time.monotonic() < deadline, "the user's server did not start"
            time.sleep(0.3)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()

    def api(self, method: str, path: str, body=None, prefix: str = "berth/api/"):
        r = httpx.request(
            method, self.url + prefix + path, headers={"Authorization": f"token {self.token}"},
            content=json.dumps(body) if body is not None else None, timeout=60,
        )  # fmt: skip
        return r.status_code, (r.json() if r.content else None)


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_new_routes_refuse_anonymous_and_foreign_callers(hub):
    narrow = hub.new_token("alice", scopes=["read:users:name!user=alice"])
    code, job = call(hub, "alice", "POST", "jobs", {"notebook": "t.ipynb", "content": notebook("import time; time.sleep(60)"),
                                                   "request": {"cpu": 0.25, "mem": "256M"}})  # fmt: skip
    assert code == 201 and job["status"] == "running", job
    jid = job["id"]
    try:
        for method, path in [("GET", "queue"), ("DELETE", "queue/k1"), ("GET", "budget"), ("GET", "jobs"),
                             ("GET", "job-environments"),
                             ("POST", "jobs"), ("GET", f"jobs/{jid}"), ("DELETE", f"jobs/{jid}"),
                             ("GET", f"jobs/{jid}/log"), ("GET", f"jobs/{jid}/output")]:  # fmt: skip
            for token, status in ((None, 401), ("not-a-token", 401), (narrow, 403)):
                code, answer = call(hub, None, method, path, {} if method == "POST" else None, token=token)
                assert code == status and answer["message"], (method, path, token, answer)
        # bob sees none of alice's job and cannot cancel it: "not found", never "forbidden"
        assert call(hub, "bob", "GET", "jobs") == (200, {"jobs": []})
        for method, path in [("GET", f"jobs/{jid}"), ("DELETE", f"jobs/{jid}"), ("GET", f"jobs/{jid}/log"),
                             ("GET", f"jobs/{jid}/output"), ("DELETE", f"queue/{jid}")]:  # fmt: skip
            code, answer = call(hub, "bob", method, path)
            assert code == 404, (method, path, answer)
        assert call(hub, "alice", "GET", f"jobs/{jid}")[1]["status"] == "running"
        code, queue = call(hub, "alice", "GET", "queue")
        assert code == 200 and queue == {"waiting": []}
        code, budget = call(hub, "alice", "GET", "budget")
        assert code == 200 and budget["user"] == "alice" and isinstance(budget["budgets"], list)
        # a caller-chosen job id (jupyter-scheduler's) is its owner's own: alice's own again is refused;
        # bob choosing the id of alice's job makes a job of his, as any new id would, and tells him nothing
        code, answer = call(hub, "alice", "POST", "jobs", {"content": notebook("1"), "job_id": jid})
        assert code == 409 and "you have a job" in answer["message"], answer
        code, his = call(hub, "bob", "POST", "jobs", {"content": notebook("1"), "job_id": jid})
        assert code == 201 and his["id"] == jid and his["owner"] == "bob", his
        code, cancelled = call(hub, "bob", "DELETE", f"jobs/{jid}")
        assert code == 200 and cancelled["owner"] == "bob" and cancelled["status"] in ("cancelled", "completed")
        assert call(hub, "alice", "GET", f"jobs/{jid}")[1]["status"] == "running"  # hers is untouched
        code, answer = call(hub, "alice", "POST", "jobs", {"content": notebook("1"), "job_id": "not-a-uuid"})
        assert code == 400 and answer["field"] == "job_id"
        # a refusal names the field; the body never names the owner
        code, answer = call(hub, "alice", "POST", "jobs", {"content": notebook("1"), "owner": "bob"})
        assert code == 400 and answer["field"] == "owner"
    finally:
        code, cancelled = call(hub, "alice", "DELETE", f"jobs/{jid}")
    assert code == 200 and cancelled["status"] == "cancelled"


def test_the_job_offer_is_each_users_own_policy_in_the_service_and_in_the_users_server(hub, tmp_path):
    """The Create-job dialog's offer in hub mode is the service's rule for the caller: a preset over bob's
    policy and an image it does not allow are not offered to him; alice, whose policy allows both, gets
    them; the user's server (jupyter-scheduler's environments) shows the same."""
    policy = {"max_cpu": 0.5, "max_mem": "512M", "allowed_images": ["berth/nothing-like-this:*"]}
    r = httpx.put(hub.service_url + "api/policies/users/bob", headers=hub.headers, json=policy, timeout=60)
    assert r.status_code == 200, r.text
    try:
        code, alice = call(hub, "alice", "GET", "job-environments")
        assert code == 200 and {p["name"] for p in alice["presets"]} == {"small", "standard"}, alice
        assert "berth/python:3.11" in [i["ref"] for i in alice["images"]]
        code, bob = call(hub, "bob", "GET", "job-environments")
        assert code == 200 and [p["name"] for p in bob["presets"]] == ["small"], bob  # standard: 1 CPU > 0.5
        assert bob["images"] == [] and bob["default_request"], bob
        (tmp_path / "bob-scheduler").mkdir()
        server = UserServer(hub, "bob", tmp_path / "bob", scheduler_args(tmp_path / "bob-scheduler")).start()
        try:
            code, envs = server.api("GET", "runtime_environments", prefix="scheduler/")
            assert code == 200 and envs == [], envs  # no image bob may run: nothing to choose
        finally:
            server.stop()
    finally:
        r = httpx.delete(hub.service_url + "api/policies/users/bob", headers=hub.headers, timeout=60)
        assert r.status_code == 200, r.text


def test_a_job_outlives_the_users_server_and_is_listed_at_the_next_login(hub, tmp_path):
    first = UserServer(hub, "alice", tmp_path / "home").start()
    try:
        code, info = first.api("GET", "info")
        assert code == 200 and (info["mode"], info["user"]) == ("hub", "alice")
        nb = notebook("import time\nprint('begun', flush=True)\ntime.sleep(12)", "print('RESULT', 6 * 7)")
        code, job = first.api(
            "POST", "jobs", {"notebook": "train.ipynb", "content": nb, "request": {"cpu": 0.25, "mem": "256M"}}
        )
        assert code == 201 and job["status"] == "running", job
        wait_for(lambda: "begun" in first.api("GET", f"jobs/{job['id']}/log")[1]["text"], 60, "the first cell")
        # the queue, the budget and the jobs come from the service, through the server (the job runs on
        # meanwhile: compare what does not change from one call to the next)
        assert first.api("GET", "queue") == call(hub, "alice", "GET", "queue") == (200, {"waiting": []})
        code, budget = first.api("GET", "budget")
        assert code == 200 and (budget["user"], len(budget["budgets"])) == (
            "alice",
            len(call(hub, "alice", "GET", "budget")[1]["budgets"]),
        )
        code, listed = first.api("GET", "jobs")
        assert code == 200 and [j["id"] for j in listed["jobs"]] == [
            j["id"] for j in call(hub, "alice", "GET", "jobs")[1]["jobs"]
        ]
        assert listed["jobs"][0]["id"] == job["id"]
    finally:
        first.stop()  # the user's server goes away mid-run (culled, or stopped by its user)
    assert first.proc.returncode is not None

    done = wait_for(
        lambda: (lambda j: j if j["status"] != "running" else None)(call(hub, "alice", "GET", f"jobs/{job['id']}")[1]),
        120,
        "the job to end",
    )
    assert (done["status"], done["reason"], done["exit_code"]) == ("completed", "completed", 0), done

    second = UserServer(hub, "alice", tmp_path / "home").start()  # the next login
    try:
        code, listed = second.api("GET", "jobs")
        assert code == 200 and [(j["id"], j["status"]) for j in listed["jobs"]][:1] == [(job["id"], "completed")]
        code, out = second.api("GET", f"jobs/{job['id']}/output")
        assert code == 200
        assert "RESULT 42" in "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))
    finally:
        second.stop()


def scheduler_args(state: Path) -> tuple[str, ...]:
    """jupyter-scheduler with Berth as its backend (docs/jobs.md), its database and staging area in ``state``."""
    return (
        f"--SchedulerApp.db_url=sqlite:///{state / 'scheduler.sqlite'}",
        "--SchedulerApp.environment_manager_class=jupyter_berth.server.scheduler.BerthEnvironmentManager",
        "--SchedulerApp.scheduler_class=jupyter_berth.server.scheduler.BerthScheduler",
        f"--BaseScheduler.staging_path={state / 'staging'}",
    )


def test_a_scheduler_job_in_hub_mode_is_the_services_and_its_output_lands_in_the_users_server(hub, tmp_path):
    """jupyter-scheduler's Create-job call in hub mode: the hub's service runs the job in its own container
    (the notebook sent with it, the scheduler's job id kept), the output notebook and log are downloaded into
    the scheduler's folder in the user's server, bob cannot see the job, and a job that ends while the
    user's server is stopped is brought in at the next login."""
    home, state = tmp_path / "home", tmp_path / "scheduler"
    state.mkdir()
    home.mkdir()
    cells = [
        {"cell_type": "code", "execution_count": None, "metadata": {"tags": ["parameters"]}, "outputs": [],
         "source": "alpha = 1\nnap = 0"},
        {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
         "source": "import time\nprint('begun', flush=True)\ntime.sleep(float(nap))\nprint('RESULT', alpha * 10)"},
    ]  # fmt: skip
    (home / "train.ipynb").write_text(json.dumps({**notebook(), "cells": cells}))

    def create(server, name: str, nap: int) -> str:
        body = {
            "input_uri": "train.ipynb",
            "name": name,
            "runtime_environment_name": "berth/python:3.11",
            "runtime_environment_parameters": {"cpu": "0.25", "mem": "256M"},
            "compute_type": "default",
            "parameters": {"alpha": "0.5", "nap": str(nap)},
            "output_formats": ["ipynb"],
        }
        code, answer = server.api("POST", "jobs", body, prefix="scheduler/")
        assert code == 200, answer
        return answer["job_id"]

    def scheduler_job(server, job_id: str, wanted=("COMPLETED", "FAILED", "STOPPED")) -> dict:
        return wait_for(
            lambda: (lambda j: j if j["status"] in wanted else None)(
                server.api("GET", f"jobs/{job_id}", prefix="scheduler/")[1]
            ),
            150,
            f"scheduler job {job_id} to end",
        )

    def output_text(job: dict) -> str:
        files = {f["file_format"]: f["file_path"] for f in job["job_files"]}
        out = json.loads((home / files["ipynb"]).read_text())
        assert any("alpha = 0.5" in c["source"] for c in out["cells"])  # the parameters, injected
        return "".join(o.get("text", "") for c in out["cells"] for o in c.get("outputs", []))

    first = UserServer(hub, "alice", home, scheduler_args(state)).start()
    try:
        code, envs = first.api("GET", "runtime_environments", prefix="scheduler/")
        assert code == 200 and "berth/python:3.11" in [e["name"] for e in envs], envs  # the service's offer
        quick = create(first, "quick", 0)
        code, berth = call(hub, "alice", "GET", f"jobs/{quick}")  # the service's job, with the scheduler's id
        assert code == 200 and berth["resources"]["cpu"] == 0.25 and berth["owner"] == "alice", berth
        assert not berth["job_dir"].startswith(str(home))  # kept by the service, not on the user's volume
        for method, path in [("GET", f"jobs/{quick}"), ("DELETE", f"jobs/{quick}"), ("GET", f"jobs/{quick}/output")]:
            assert call(hub, "bob", method, path)[0] == 404, (method, path)  # bob: "not found"
        done = scheduler_job(first, quick)
        assert done["status"] == "COMPLETED", done.get("status_message")
        assert "RESULT 5.0" in output_text(done)
        assert "begun" in (home / "jobs" / f"train-{quick}" / "job.log").read_text()
        code, listed = call(hub, "bob", "GET", "jobs")  # only his own (an earlier test gave him one)
        assert code == 200 and {j["owner"] for j in listed["jobs"]} <= {"bob"} and quick not in str(listed), listed

        slow = create(first, "slow", 10)
        wait_for(lambda: "begun" in call(hub, "alice", "GET", f"jobs/{slow}/log")[1]["text"], 60, "the first cell")
    finally:
        first.stop()  # the user's server goes away while the job runs
    ended = wait_for(
        lambda: (lambda j: j if j["status"] != "running" else None)(call(hub, "alice", "GET", f"jobs/{slow}")[1]),
        120,
        "the job to end at the service",
    )
    assert ended["status"] == "completed", ended
    assert not (home / "jobs" / f"train-{slow}" / "output.ipynb").exists()  # nothing reached the user's server yet

    second = UserServer(hub, "alice", home, scheduler_args(state)).start()  # the next login
    try:
        done = scheduler_job(second, slow)
        assert done["status"] == "COMPLETED", done.get("status_message")
        assert "RESULT 5.0" in output_text(done)
    finally:
        second.stop()
