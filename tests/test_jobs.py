"""Batch jobs (core/jobs): parameters, limits, OOM, time limit, cancel, owners, restart. Real Docker engine."""

from __future__ import annotations

import json
import os

import pytest

from jupyter_berth.errors import ConflictError, NotFoundError, PolicyError, RequestError
from jupyter_berth.jobs.container import outcome
from jupyter_berth.jobs.notebook import INJECTED_TAG, inject_parameters, typed_value
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

LIMITS_CELL = """
import os, json, pathlib
def read(*names):
    for n in names:
        p = pathlib.Path('/sys/fs/cgroup') / n
        if p.exists():
            return p.read_text().strip()
limits = {'mem': read('memory/memory.limit_in_bytes', 'memory.max'),
          'cpu_quota': read('cpu/cpu.cfs_quota_us', 'cpu.max')}
pathlib.Path('limits.json').write_text(json.dumps(limits))
print('LIMITS', json.dumps(limits))
"""


def code(source: str, tags=()) -> dict:
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": list(tags)},
        "outputs": [],
        "source": source,
    }


def write_notebook(path, *cells) -> str:
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "cells": list(cells),
    }
    path.write_text(json.dumps(nb))
    return str(path)


def outputs_text(cell: dict) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text") or json.dumps(o.get("data", {})) or "")
    return "".join(out)


# -- pure parts ----------------------------------------------------------------------------


def test_parameters_are_typed_like_papermill():
    assert [typed_value(v) for v in ("3", "0.5", "True", "None", "abc", "1e3")] == [3, 0.5, True, None, "abc", 1000.0]


def test_injected_cell_follows_the_parameters_cell_and_replaces_an_earlier_one():
    nb = {"nbformat": 4, "cells": [code("import x"), code("alpha = 1", tags=["parameters"]), code("print(alpha)")]}
    once = inject_parameters(nb, {"alpha": 0.5, "name": "run"})
    assert [c["metadata"]["tags"] for c in once["cells"]] == [[], ["parameters"], [INJECTED_TAG], []]
    assert "alpha = 0.5\nname = 'run'" in once["cells"][2]["source"]
    twice = inject_parameters(once, {"alpha": 2})
    assert len(twice["cells"]) == 4 and "alpha = 2" in twice["cells"][2]["source"]
    assert inject_parameters({"nbformat": 4, "cells": [code("a")]}, {"b": 1})["cells"][0]["metadata"]["tags"] == [
        INJECTED_TAG
    ]
    with pytest.raises(RequestError, match="not a Python variable name"):
        inject_parameters(nb, {"not valid": 1})


def test_outcome_names_oom_time_limit_cancel_and_cell_errors():
    res = Resources.parse({"cpu": 0.5, "mem": "512M"})
    oom = outcome(oom_killed=True, exit_code=2, result={"status": "failed", "cell": 2}, resources=res)
    assert (oom.status, oom.reason, oom.end_reason) == ("failed", "out of memory", "oom")
    assert "512" in oom.message and "output.ipynb" in oom.message
    late = outcome(oom_killed=False, exit_code=137, result=None, resources=res, stopped="time limit", time_limit=5)
    assert (late.status, late.reason, late.end_reason) == ("failed", "time limit", "lifetime")
    gone = outcome(oom_killed=False, exit_code=None, result=None, resources=res, gone=True)
    assert gone.reason == "lost"
    err = outcome(
        oom_killed=False, exit_code=1, result={"status": "failed", "reason": "error", "message": "cell 2 raised X"},
        resources=res,
    )  # fmt: skip
    assert (err.status, err.reason, err.message.split(";")[0]) == ("failed", "error", "cell 2 raised X")
    ok = outcome(oom_killed=False, exit_code=0, result={"status": "completed"}, resources=res)
    assert (ok.status, ok.end_reason) == ("completed", "completed")


# -- on the engine -------------------------------------------------------------------------


async def test_parameterised_job_runs_in_its_limits_and_is_accounted(berth_service, workdir):
    nb = write_notebook(
        workdir / "train.ipynb",
        code("alpha = 1\nlabel = 'default'", tags=["parameters"]),
        code(LIMITS_CELL),
        code("result = alpha * 10\nprint('RESULT', result, label)\nopen('side.txt', 'w').write(str(result))"),
    )
    job = await berth_service.jobs.submit(
        "alice", notebook=nb, parameters={"alpha": 0.5, "label": "tuned"}, request={"cpu": 0.5, "mem": "512M"}
    )
    assert job.status == "running" and job.job_dir.startswith(str(workdir / "berth-jobs"))
    assert [a.kind for a in await berth_service._db(berth_service.ledger.live_allocations, owner="alice")] == ["job"]
    done = await berth_service.jobs.wait("alice", job.id, timeout=120)
    assert (done.status, done.reason, done.exit_code) == ("completed", "completed", 0), done.message

    out = json.loads((workdir / "berth-jobs" / os.path.basename(job.job_dir) / "output.ipynb").read_text())
    injected = out["cells"][1]
    assert INJECTED_TAG in injected["metadata"]["tags"] and "alpha = 0.5" in injected["source"]
    assert "RESULT 5.0 tuned" in outputs_text(out["cells"][3])
    limits = json.loads(open(os.path.join(job.job_dir, "limits.json")).read())
    assert limits["mem"] == str(512 * 1024 * 1024)
    assert limits["cpu_quota"] in ("50000", "50000 100000")
    assert open(os.path.join(job.job_dir, "side.txt")).read() == "5.0"
    text, offset = await berth_service.jobs.read_log("alice", job.id)
    assert "RESULT 5.0 tuned" in text and "[berth] completed" in text and offset == len(text.encode())

    records = [
        r for r in await berth_service._db(berth_service.ledger.usage_records, owner="alice") if r.subject == job.id
    ]
    assert [(r.kind, r.end_reason, r.exit_code, r.cpu, r.mem) for r in records] == [
        ("job", "completed", 0, 0.5, 512 * 1024 * 1024)
    ]
    assert not await berth_service.runtime.list({"site": berth_service.site_id, "kind": "job"})
    report = await berth_service.usage.usage_report(since="2000-01-01", by="user", user="alice")
    assert (report.totals["jobs"], report.totals["kernels"]) == (1, 0) and report.totals["job_hours"] > 0
    assert report.totals["cpu_core_hours_allotted"] == pytest.approx(0.5 * report.totals["job_hours"], abs=2e-6)


async def test_job_over_its_memory_ends_with_the_oom_reason_and_keeps_partial_output(berth_service, workdir):
    nb = write_notebook(
        workdir / "greedy.ipynb",
        code("print('before')"),
        code("hog = bytearray(400 * 1024 * 1024)\nfor i in range(0, len(hog), 4096): hog[i] = 1"),
        code("print('never')"),
    )
    job = await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 0.5, "mem": "192M"})
    done = await berth_service.jobs.wait("alice", job.id, timeout=120)
    assert (done.status, done.reason) == ("failed", "out of memory")
    assert "192" in done.message and "memory limit" in done.message
    out = json.loads(open(os.path.join(job.job_dir, "output.ipynb")).read())
    assert "before" in outputs_text(out["cells"][0]) and "never" not in outputs_text(out["cells"][2])
    records = [
        r for r in await berth_service._db(berth_service.ledger.usage_records, owner="alice") if r.subject == job.id
    ]
    assert [r.end_reason for r in records] == ["oom"]


async def test_a_cell_error_fails_the_job_with_the_cell_named(berth_service, workdir):
    nb = write_notebook(workdir / "broken.ipynb", code("x = 1"), code("raise ValueError('bad input')"))
    job = await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 0.25, "mem": "256M"})
    done = await berth_service.jobs.wait("alice", job.id, timeout=120)
    assert (done.status, done.reason, done.exit_code) == ("failed", "error", 1)
    assert done.message.startswith("cell 2 raised ValueError: bad input")


async def test_foreign_user_cannot_see_or_cancel_and_owner_cancels(berth_service, workdir):
    nb = write_notebook(workdir / "long.ipynb", code("import time\ntime.sleep(120)"))
    job = await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 0.25, "mem": "256M"})
    with pytest.raises(NotFoundError, match="no job"):
        await berth_service.jobs.get("mallory", job.id)
    with pytest.raises(NotFoundError, match="no job"):
        await berth_service.jobs.cancel("mallory", job.id)
    assert await berth_service.jobs.list("mallory") == []
    assert [j.id for j in await berth_service.jobs.list("alice")] == [job.id]
    assert (await berth_service.jobs.get("alice", job.id)).running
    # job ids are per owner: mallory choosing the id of alice's job gets a job of his own, as with any new id
    mine = write_notebook(workdir / "mine.ipynb", code("import time\ntime.sleep(120)"))
    his = await berth_service.jobs.submit("mallory", notebook=mine, request={"cpu": 0.25, "mem": "256M"}, job_id=job.id)
    assert (his.id, his.owner) == (job.id, "mallory") and his.job_dir != job.job_dir
    with pytest.raises(ConflictError, match="you have a job"):  # an owner's own id is refused, and only that
        await berth_service.jobs.submit("alice", notebook=nb, job_id=job.id)
    assert (await berth_service.jobs.cancel("mallory", job.id)).owner == "mallory"
    assert (await berth_service.jobs.get("alice", job.id)).running  # alice's job is untouched
    done = await berth_service.jobs.cancel("alice", job.id)
    assert (done.status, done.reason) == ("cancelled", "cancelled")


async def test_time_limit_stops_a_job_with_a_clear_reason(berth_service, workdir):
    nb = write_notebook(workdir / "slow.ipynb", code("print('start')"), code("import time\ntime.sleep(120)"))
    job = await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 0.25, "mem": "256M"}, time_limit=6)
    done = await berth_service.jobs.wait("alice", job.id, timeout=60)
    assert (done.status, done.reason) == ("failed", "time limit") and "6 s" in done.message
    records = [
        r for r in await berth_service._db(berth_service.ledger.usage_records, owner="alice") if r.subject == job.id
    ]
    assert [r.end_reason for r in records] == ["lifetime"]


async def test_jobs_are_admitted_like_kernels_with_the_same_refusal(berth_service, workdir):
    nb = write_notebook(workdir / "big.ipynb", code("pass"))
    with pytest.raises(PolicyError) as as_job:
        await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 4})
    with pytest.raises(PolicyError) as as_kernel:
        await berth_service.start_kernel("alice", kernel_id="k-refused", request={"cpu": 4})
    # the same check and wording; admission names what was asked for (a job, a kernel)
    assert as_job.value.message == as_kernel.value.message.replace("per kernel", "per job")
    assert await berth_service.jobs.list("alice") == []
    assert await berth_service._db(berth_service.ledger.live_allocations, owner="alice") == []


async def test_a_running_job_counts_as_a_kernel_and_a_refused_job_leaves_no_files(berth_service, workdir):
    await berth_service._db(berth_service.ledger.set_policy, "user", "bob", {"max_kernels": 1})
    long = write_notebook(workdir / "long.ipynb", code("import time\ntime.sleep(60)"))
    first = await berth_service.jobs.submit("bob", notebook=long, request={"cpu": 0.25, "mem": "256M"})
    with pytest.raises(PolicyError, match="max_kernels limit of 1") as refused_job:
        await berth_service.jobs.submit("bob", notebook=long, request={"cpu": 0.25, "mem": "256M"})
    with pytest.raises(PolicyError) as refused_kernel:
        await berth_service.start_kernel("bob", kernel_id="k-over", request={"cpu": 0.25, "mem": "256M"})
    assert refused_job.value.message == refused_kernel.value.message
    assert os.listdir(workdir / "berth-jobs") == [os.path.basename(first.job_dir)]
    assert [j.id for j in await berth_service.jobs.list("bob")] == [first.id]
    await berth_service.jobs.cancel("bob", first.id)


async def test_job_survives_the_service_restarting(tmp_path, berth_service, workdir):
    nb = write_notebook(workdir / "overnight.ipynb", code("import time\ntime.sleep(8)\nprint('finished overnight')"))
    quick = write_notebook(workdir / "quick.ipynb", code("print('done while away')"))
    job = await berth_service.jobs.submit("alice", notebook=nb, request={"cpu": 0.25, "mem": "256M"})
    fast = await berth_service.jobs.submit("alice", notebook=quick, request={"cpu": 0.25, "mem": "256M"})
    await berth_service.jobs.stop()  # the service goes away (its followers with it); containers keep running
    containers = await berth_service.runtime.list({"site": berth_service.site_id, "kind": "job"})
    assert {c.berth_labels["subject"] for c in containers} == {job.id, fast.id}
    await berth_service.runtime.wait(fast.container_id, timeout=60)  # one ends while nobody watches

    again = BerthService(config=service_config(berth_service.data_dir), runtime=DockerRuntime())
    try:
        plan = await again.start()
        assert {a.subject for a, _c in plan.adopt} == {job.id}
        assert (await again.jobs.get("alice", fast.id)).status == "completed"
        records = await again._db(again.ledger.usage_records, owner="alice")
        assert [(r.subject, r.end_reason, r.exit_code) for r in records] == [(fast.id, "completed", 0)]
        done = await again.jobs.wait("alice", job.id, timeout=60)
        assert (done.status, done.reason) == ("completed", "completed")
        text, _ = await again.jobs.read_log("alice", job.id)
        assert "finished overnight" in text
    finally:
        await again.stop()


# -- berth run -------------------------------------------------------------------------------


def test_split_parameters_takes_name_value_pairs_out_of_argv():
    from jupyter_berth.cli.run_cmd import split_parameters

    rest, params = split_parameters(["nb.ipynb", "-p", "alpha", "0.5", "--cpu=1", "--parameter", "tag", "x"])
    assert rest == ["nb.ipynb", "--cpu=1"] and params == {"alpha": 0.5, "tag": "x"}
    with pytest.raises(RequestError, match="-p alpha 0.5"):
        split_parameters(["nb.ipynb", "-p", "alpha"])


def _berth_run(tmp_path, *args):
    import subprocess
    import sys

    env = {**os.environ, "BERTH_USER": "runner"}
    return subprocess.run(
        [sys.executable, "-m", "jupyter_berth", "run", *args, f"--data-dir={tmp_path / 'cli-data'}"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


def test_berth_run_follows_the_log_and_exits_with_the_job_status(tmp_path, workdir):
    (tmp_path / "cli-data").mkdir()
    nb = write_notebook(
        workdir / "cli.ipynb", code("alpha = 1", tags=["parameters"]), code("print('RESULT', alpha * 10)")
    )
    ok = _berth_run(tmp_path, nb, "--cpu=0.5", "--mem=256M", "-p", "alpha", "3")
    assert ok.returncode == 0, ok.stderr
    assert "RESULT 30" in ok.stdout and "[berth] completed" in ok.stdout
    assert "completed: all 3 code cells ran" in ok.stderr  # the injected parameters cell is one
    bad = write_notebook(workdir / "bad.ipynb", code("1 / 0"))
    failed = _berth_run(tmp_path, bad, "--cpu=0.25", "--mem=256M")
    assert failed.returncode == 1 and "cell 1 raised ZeroDivisionError" in failed.stderr
    listed = _berth_run(tmp_path, "--list")
    assert listed.returncode == 0 and [line.split()[3] for line in listed.stdout.splitlines()] == [
        "failed",
        "completed",
    ]
    refused = _berth_run(tmp_path, bad, "--cpu=64")
    assert refused.returncode == 1 and "berth: cpu:" in refused.stderr


def test_berth_run_detach_then_attach_follows_a_job_nobody_watched(tmp_path, workdir):
    (tmp_path / "cli-data").mkdir()
    nb = write_notebook(workdir / "later.ipynb", code("import time\ntime.sleep(3)\nprint('LATER')"))
    detached = _berth_run(tmp_path, nb, "--cpu=0.25", "--mem=256M", "--detach")
    assert detached.returncode == 0, detached.stderr
    job_id = detached.stdout.strip()
    attached = _berth_run(tmp_path, f"--attach={job_id}")
    assert attached.returncode == 0, attached.stderr
    assert "LATER" in attached.stdout and f"job {job_id} completed" in attached.stderr
