"""``JobManager``: notebooks run as batch jobs, each in its own Berth container, owned by the service.

A job is admitted exactly like a kernel (the same resolution: explicit request > preset > profile >
policy default, then the same policy check and the same check-and-reserve, with an allocation of
kind ``job`` that counts against the same totals and ``max_kernels``), so a refusal reads the same.
Its container runs the notebook (``run_notebook.py``) and writes ``output.ipynb``, ``job.log``,
``result.json`` and whatever the notebook writes into the job directory.

The service, not the user's server, follows each job: a task per running job waits for its
container, stops it at its time limit, then records the outcome (the job row, and the allocation's
release with a usage record: CPU, memory, GPU share-hours, exit code, reason). Jobs are not kernels
of any server, so nothing culls them as idle. When the service stops, the containers keep running;
a restarted service follows them again (:meth:`resume`, before ``reconcile`` adopts their containers
by their labels), or records the end of those that finished while it was away.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from datetime import datetime, timezone

from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .. import allocation_plan
from ..errors import NotFoundError, RequestError
from ..images import catalog
from ..resources import Resources
from . import store
from .container import job_spec, outcome, outcome_from_info
from .notebook import check_parameters, inject_parameters, read_notebook
from .store import Job

#: The uid:gid job containers run as (``ContainerSpec.user``); a service running as root hands them the job directory.
CONTAINER_UID, CONTAINER_GID = 1000, 1000


def _job_id(asked: str | None) -> str:
    if not asked:
        return str(uuid.uuid4())
    try:
        return str(uuid.UUID(str(asked)))
    except ValueError:
        raise RequestError("job_id", f"{asked!r} is not a UUID such as {uuid.uuid4()}") from None


class JobManager(LoggingConfigurable):
    """Submits, follows, cancels and reports batch jobs for one :class:`~jupyter_berth.service.BerthService`."""

    jobs_dir = Unicode(
        "berth-jobs",
        config=True,
        help="Where a job's files go when the submitter names no output directory: this folder next to the "
        "notebook, one sub-folder per job (<notebook>-<time>-<id>) with output.ipynb, job.log and side files.",
    )
    default_time_limit = Float(
        0.0,
        config=True,
        help="Seconds a job may run when it asks for no time limit (0: no limit). A job past its limit is "
        "stopped and recorded as failed with the reason 'time limit'.",
    )
    max_time_limit = Float(
        0.0, config=True, help="Longest time limit a job may ask for, in seconds (0: any). Longer requests are refused."
    )

    def __init__(self, service, **kw):
        super().__init__(**kw)
        self.service = service
        self._followers: dict[str, asyncio.Task] = {}
        self._stopping: dict[str, str] = {}  # job id -> why Berth stops it ("cancelled", "time limit")

    # ---- submit -------------------------------------------------------------------------
    def _time_limit(self, asked) -> float | None:
        if asked in (None, "", 0):
            return self.default_time_limit or None
        try:
            limit = float(asked)
        except (TypeError, ValueError):
            raise RequestError("time_limit", f"{asked!r} is not a number of seconds") from None
        if limit <= 0:
            raise RequestError("time_limit", "must be a positive number of seconds (leave it out for no limit)")
        if self.max_time_limit and limit > self.max_time_limit:
            raise RequestError(
                "time_limit",
                f"{limit:g} s is over the longest time limit jobs may ask for here, {self.max_time_limit:g} s",
            )
        return limit

    def _job_dir(self, notebook: str, output_dir: str | None, job_id: str) -> str:
        if output_dir:
            path = os.path.abspath(os.path.expanduser(output_dir))
        else:
            stem = re.sub(r"[^A-Za-z0-9_.-]", "-", os.path.splitext(os.path.basename(notebook))[0])[:60]
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            path = os.path.join(os.path.dirname(notebook), self.jobs_dir, f"{stem}-{stamp}-{job_id[:8]}")
        return path

    @staticmethod
    def _check_empty(job_dir: str) -> None:
        if os.path.isdir(job_dir) and os.listdir(job_dir):
            raise RequestError(
                "output_dir", f"{job_dir} is not empty; name a new or empty directory for the job's files"
            )

    @classmethod
    def _prepare_dir(cls, job_dir: str, nb: dict) -> bool:
        """Create the job directory with its input notebook; ``True`` when the directory is new."""
        cls._check_empty(job_dir)
        made = not os.path.isdir(job_dir)
        os.makedirs(job_dir, exist_ok=True)
        with open(os.path.join(job_dir, "input.ipynb"), "w", encoding="utf-8") as f:
            json.dump(nb, f, indent=1)
        if os.geteuid() == 0:
            for path in (job_dir, os.path.join(job_dir, "input.ipynb")):
                os.chown(path, CONTAINER_UID, CONTAINER_GID)
        elif os.getuid() != CONTAINER_UID:
            os.chmod(job_dir, 0o777)  # the container's user must write its output here
        return made

    async def submit(
        self,
        user: str,
        groups=(),
        *,
        notebook: str,
        parameters: dict | None = None,
        request: dict | None = None,
        preset: str | None = None,
        image: str | None = None,
        folders: list[str] | None = None,
        time_limit: float | None = None,
        name: str | None = None,
        output_dir: str | None = None,
        job_id: str | None = None,
    ) -> Job:
        """Admit and start one job; nothing stays reserved if the start fails.

        ``job_id``: a UUID the caller chose (jupyter-scheduler passes its own job id), else a new one.
        """
        s = self.service
        notebook = os.path.abspath(os.path.expanduser(notebook))
        nb = await asyncio.to_thread(read_notebook, notebook)
        parameters = check_parameters(dict(parameters or {}))
        limit = self._time_limit(time_limit)
        resources, image, policy = await s.resolve_request(user, groups, request=request, preset=preset, image=image)
        info = catalog.find(await s.images.catalog_view(), image)
        mounts = await s.folders.folder_mounts(user, groups, folders) if folders else []
        job_id = _job_id(job_id)
        job_dir = self._job_dir(notebook, output_dir, job_id)
        injected = inject_parameters(nb, parameters)
        if output_dir:
            await asyncio.to_thread(self._check_empty, job_dir)
        alloc = await allocation_plan.reserve(
            s, owner=user, groups=groups, policy=policy, request=resources, kind="job", subject=job_id, image=image
        )
        job = None
        made_dir = False
        try:
            made_dir = await asyncio.to_thread(self._prepare_dir, job_dir, injected)
            spec = job_spec(
                owner=user,
                job_id=job_id,
                allocation_id=alloc.id,
                image=image,
                resources=resources,
                job_dir=job_dir,
                network=await s._user_network(user),
                mounts=mounts,
                site=s.site_id,
            )
            allocation_plan.place(s, spec, alloc)
            job = await s._db(
                store.add,
                s.ledger,
                id=job_id,
                owner=user,
                groups=list(groups),
                name=name or os.path.basename(notebook),
                notebook=notebook,
                job_dir=job_dir,
                parameters=parameters,
                image=image,
                resources=resources.to_dict(),
                time_limit=limit,
                allocation_id=alloc.id,
            )
            container = await s.runtime.run(spec)
            await s._db(s.ledger.mark_running, alloc.id, container.id, image_digest=info.digest)
            job = await s._db(store.set_container, s.ledger, job_id, container.id)
        except BaseException as e:
            message = getattr(e, "message", str(e))[:500]
            await s._db(s.ledger.release, alloc.id, "failed", message=message)
            if job is not None:
                await s._db(
                    store.finish, s.ledger, job_id, status="failed", reason="start", message=message, exit_code=None
                )
            elif made_dir:  # nothing was recorded: leave no trace of a job that never was
                await asyncio.to_thread(shutil.rmtree, job_dir, True)
            raise
        self.log.info("Started job %s for %s: %s in %s (%s)", job_id, user, notebook, image, resources.describe())
        self.follow(job)
        return job

    # ---- follow and finish ----------------------------------------------------------------
    def follow(self, job: Job) -> None:
        """Follow a running job in this process until it ends (idempotent)."""
        if job.id not in self._followers:
            task = asyncio.ensure_future(self._wait_and_end(job))
            self._followers[job.id] = task
            task.add_done_callback(lambda _t, jid=job.id: self._followers.pop(jid, None))

    async def _wait_and_end(self, job: Job) -> None:
        runtime = self.service.runtime
        timeout = None
        if job.time_limit:
            elapsed = (datetime.now(timezone.utc) - job.created_at).total_seconds()
            timeout = max(0.0, job.time_limit - elapsed)
        try:
            try:
                await runtime.wait(job.container_id, timeout=timeout)
            except TimeoutError:
                self._stopping[job.id] = "time limit"
                await runtime.stop(job.container_id, timeout=self.service.stop_timeout)
            except NotFoundError:
                pass
            await self._end(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the service going; the next start records the end
            self.log.exception("Following job %s failed", job.id)

    def _read_result(self, job: Job) -> dict | None:
        try:
            with open(os.path.join(job.job_dir, "result.json"), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    async def _end(self, job: Job) -> Job:
        """Record the end of a job whose container has stopped (or is gone), release its allocation."""
        s = self.service
        stopped = self._stopping.pop(job.id, None)
        result = await asyncio.to_thread(self._read_result, job)
        alloc = await self._allocation(job)
        info = await s.runtime.inspect(job.container_id) if job.container_id else None
        resources = Resources.parse(job.resources)
        if alloc is not None:
            usage = await s.usage.sample_one(alloc, info)
            out = outcome_from_info(info, result, resources, stopped=stopped, time_limit=job.time_limit)
            await s._db(
                s.ledger.release,
                alloc.id,
                out.end_reason,
                exit_code=out.exit_code,
                message=out.message,
                cpu_seconds=usage.cpu_seconds if usage else None,
                mem_peak_bytes=usage.mem_peak_bytes if usage else None,
            )
        else:  # released while the service was away (reconcile): its usage record has the engine's facts
            record = await self._usage_record(job)
            out = outcome(
                oom_killed=bool(record and record.end_reason == "oom"),
                exit_code=record.exit_code if record else None,
                result=result,
                resources=resources,
                stopped=stopped,
                time_limit=job.time_limit,
                gone=record is not None and record.end_reason == "lost" and not result,
            )
        if info is not None:
            await s.runtime.remove(info.id)
        ended = await s._db(
            store.finish,
            s.ledger,
            job.id,
            status=out.status,
            reason=out.reason,
            message=out.message,
            exit_code=out.exit_code,
        )
        self.log.info("Job %s of %s ended: %s (%s)", job.id, job.owner, out.status, out.message)
        return ended or await s._db(store.get, s.ledger, job.id)

    async def _allocation(self, job: Job):
        for a in await self.service._db(self.service.ledger.live_allocations, owner=job.owner, kind="job"):
            if a.id == job.allocation_id:
                return a
        return None

    async def _usage_record(self, job: Job):
        records = await self.service._db(self.service.ledger.usage_records, since=job.created_at, owner=job.owner)
        return next((r for r in records if r.allocation_id == job.allocation_id), None)

    async def resume(self, owner: str | None = None, *, follow: bool = True) -> int:
        """When the service (re)starts, before it reconciles: follow running jobs again, and record the end
        (with the job's own reason in its usage record) of those whose container stopped while it was away.
        Returns how many are followed."""
        count = 0
        now = datetime.now(timezone.utc)
        running = await self.service._db(store.find, self.service.ledger, owner=owner, status="running", limit=10_000)
        for job in running:
            if job.container_id is None and (now - job.created_at).total_seconds() < 120:
                continue  # being submitted right now by another process
            info = await self.service.runtime.inspect(job.container_id) if job.container_id else None
            if info is not None and info.running:
                if follow:
                    self.follow(job)
                    count += 1
            else:
                await self._end(job)
        return count

    async def stop(self) -> None:
        """Stop following (the service is stopping); the containers keep running."""
        tasks = list(self._followers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- what users ask -------------------------------------------------------------------
    async def get(self, user: str | None, job_id: str) -> Job:
        return await self.service._db(store.get, self.service.ledger, job_id, owner=user)

    async def list(self, user: str | None, status: str | None = None) -> list[Job]:
        return await self.service._db(store.find, self.service.ledger, owner=user, status=status)

    async def cancel(self, user: str | None, job_id: str) -> Job:
        """Stop a running job (its owner's; another user's job is "not found"); an ended job is returned as is."""
        job = await self.get(user, job_id)
        if not job.running:
            return job
        self._stopping[job.id] = "cancelled"
        if job.container_id:
            await self.service.runtime.stop(job.container_id, timeout=self.service.stop_timeout)
        task = self._followers.get(job.id)
        if task is not None:
            await asyncio.shield(task)
            return await self.get(user, job_id)
        return await self._end(job)

    async def wait(self, user: str | None, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended (``TimeoutError`` after ``timeout`` seconds)."""
        job = await self.get(user, job_id)
        task = self._followers.get(job_id)
        if job.running and task is not None:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        return await self.get(user, job_id)

    async def read_log(self, user: str | None, job_id: str, offset: int = 0) -> tuple[str, int]:
        """The job's log from byte ``offset``: ``(text, next offset)``."""
        job = await self.get(user, job_id)

        def read():
            try:
                with open(os.path.join(job.job_dir, "job.log"), "rb") as f:
                    f.seek(max(0, int(offset)))
                    data = f.read(1 << 20)
            except FileNotFoundError:
                return "", offset
            return data.decode("utf-8", errors="replace"), offset + len(data)

        return await asyncio.to_thread(read)


__all__ = ["Job", "JobManager"]
