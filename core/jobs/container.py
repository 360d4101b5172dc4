"""A job's container (what it runs, what it mounts) and how its end reads (pure; tested without an engine).

The container runs ``run_notebook.py`` (mounted read-only from this package; it needs only
``jupyter_client``, which every image with ipykernel has) on the job directory, mounted at
:data:`JOB_TARGET` and used as working directory, so side files the notebook writes land next to
its output notebook and log. The container carries the ``job`` kind label and its allocation, so a
restarted service adopts it like a kernel (``reconcile``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..resources import Resources, format_bytes
from ..runtime import site_scope
from ..runtime.base import ContainerInfo, ContainerSpec, Mount
from ..runtime.labels import make_labels

JOB_TARGET = "/home/jovyan/job"
RUNNER_TARGET = "/opt/berth/run_notebook.py"
RUNNER_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_notebook.py")


def job_spec(
    *,
    owner: str,
    job_id: str,
    allocation_id: str,
    image: str,
    resources: Resources,
    job_dir: str,
    network: str | None,
    mounts: list[Mount] | None = None,
    env: dict | None = None,
    site: str = "",
) -> ContainerSpec:
    """The container spec of one job: the runner on ``job_dir``, the user's folders beside it."""
    all_env = {
        "BERTH_JOB_ID": job_id,
        "BERTH_USER": owner,
        "BERTH_LIMITS": resources.describe(),
        "HOME": "/home/jovyan",
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    all_env.update(env or {})
    return ContainerSpec(
        name=site_scope.container_name(site, "job", owner, job_id),
        image=image,
        command=["python3", RUNNER_TARGET, JOB_TARGET],
        resources=resources,
        labels=make_labels(
            owner=owner, kind="job", subject=job_id, allocation=allocation_id, image_ref=image, site=site
        ),
        env=all_env,
        mounts=[
            Mount(source=job_dir, target=JOB_TARGET),
            Mount(source=RUNNER_SOURCE, target=RUNNER_TARGET, read_only=True),
        ]
        + list(mounts or []),
        network=network,
        working_dir=JOB_TARGET,
    )


@dataclass(frozen=True)
class Outcome:
    """How a job ended: its ``status`` and ``reason`` (for the job list), the ``message`` a user reads,
    and the ``end_reason`` its usage record gets."""

    status: str
    reason: str
    message: str
    end_reason: str
    exit_code: int | None = None


def outcome(
    *,
    oom_killed: bool,
    exit_code: int | None,
    result: dict | None,
    resources: Resources | None,
    stopped: str | None = None,
    time_limit: float | None = None,
    gone: bool = False,
) -> Outcome:
    """Decide the outcome from the engine's facts, the runner's ``result.json`` and why Berth stopped it.

    ``stopped``: ``"cancelled"`` (by its owner) or ``"time limit"`` (Berth stopped it), else ``None``.
    OOM is checked first: a job killed for memory says so even if the runner wrote something after.
    """
    kept = "; the output of the cells that finished is in output.ipynb"
    if oom_killed:
        limit = format_bytes(resources.mem) if resources else "its"
        return Outcome(
            "failed", "out of memory", f"the job used more than its {limit} memory limit and was stopped{kept}",
            "oom", exit_code,
        )  # fmt: skip
    if stopped == "time limit":
        return Outcome(
            "failed", "time limit", f"the job ran longer than its time limit of {time_limit:g} s and was stopped{kept}",
            "lifetime", exit_code,
        )  # fmt: skip
    if stopped == "cancelled":
        return Outcome("cancelled", "cancelled", f"the job was cancelled by its owner{kept}", "cancelled", exit_code)
    if gone:
        return Outcome(
            "failed", "lost", "the job's container disappeared (it was removed outside Berth)", "lost", exit_code
        )
    result = result or {}
    if exit_code in (0, None) and result.get("status") == "completed":
        return Outcome("completed", "completed", result.get("message") or "completed", "completed", 0)
    message = result.get("message") or f"the job's runner exited with code {exit_code} (see job.log)"
    return Outcome(
        "failed", result.get("reason") or "failed", message + (kept if result.get("cell") else ""), "failed", exit_code
    )


def outcome_from_info(info: ContainerInfo | None, result: dict | None, resources: Resources, **kw) -> Outcome:
    if info is None:
        return outcome(oom_killed=False, exit_code=None, result=result, resources=resources, gone=not result, **kw)
    return outcome(oom_killed=info.oom_killed, exit_code=info.exit_code, result=result, resources=resources, **kw)
