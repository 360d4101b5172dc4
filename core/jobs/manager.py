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
import os
import shutil
import uuid
from datetime import datetime, timezone

from traitlets import Float, Unicode
from traitlets.config import LoggingConfigurable

from .. import allocation_plan, start_queue
from ..errors import BerthError, CapacityError, ConflictError, NotFoundError, RequestError
from ..images import catalog
from ..resources import Resources
from . import files, store
from .admit import JobStart
from .container import job_spec, outcome, outcome_from_info
from .notebook import check_notebook, check_parameters, inject_parameters, notebook_name, read_notebook
from .offer import job_offer
from .store import Job


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
    content_jobs_dir = Unicode(
        "",
        config=True,
        help="Where jobs sent with their notebook's content (the REST API; every job in hub mode) keep their "
        "files: one folder per user, one per job inside it. Empty: <BerthService.data_dir>/jobs. Users read "
        "the output through the API (berth/api/jobs/<id>/output and /log); back this up like the ledger.",
    )
    max_time_limit = Float(
        0.0, config=True, help="Longest time limit a job may ask for, in seconds (0: any). Longer requests are refused."
    )

    def __init__(self, service, **kw):
        super().__init__(**kw)
        self.service = service
        # keyed by Job.key, (owner, id): job ids are per owner
        self._followers: dict[tuple[str, str], asyncio.Task] = {}
        self._starting: dict[tuple[str, str], asyncio.Task] = {}  # queued jobs waiting for their turn here
        self._stopping: dict[tuple[str, str], str] = {}  # why Berth stops a job ("cancelled", "time limit")

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

    async def submit(
        self,
        user: str,
        groups=(),
        *,
        notebook: str,
        content: dict | None = None,
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

        ``notebook``: the notebook's path; or, with ``content`` (the notebook itself, as the REST API and
        hub mode send it), its file name only, and the service keeps the job's files (:meth:`read_output`).
        When there is no room and the user's policy queues (``on_full: queue``), the job is recorded
        ``queued`` and waits in the kernel start queue; it starts in its turn (also after a service restart).
        ``job_id``: a UUID the caller chose (jupyter-scheduler passes its own job id), else a new one.
        """
        s = self.service
        if content is None:
            notebook = os.path.abspath(os.path.expanduser(notebook))
            nb = await asyncio.to_thread(read_notebook, notebook)
        else:
            if output_dir:
                raise RequestError(
                    "output_dir", "a job sent with its notebook keeps its files with the Berth service; leave it out"
                )
            nb, notebook = check_notebook(content), notebook_name(notebook)
        parameters = check_parameters(dict(parameters or {}))
        limit = self._time_limit(time_limit)
        resources, image, policy = await s.resolve_request(user, groups, request=request, preset=preset, image=image)
        info = catalog.find(await s.images.catalog_view(), image)
        mounts = await s.folders.folder_mounts(user, groups, folders) if folders else []
        chosen, job_id = bool(job_id), _job_id(job_id)
        if chosen and await self._id_taken(user, job_id):
            raise ConflictError(f"you have a job {job_id} already; leave job_id out to get a new id")
        if content is None:
            job_dir = files.beside_notebook(notebook, output_dir, job_id, self.jobs_dir)
        else:
            job_dir = files.service_owned(
                self.content_jobs_dir or os.path.join(s.data_dir, "jobs"), user, notebook, job_id
            )
        injected = inject_parameters(nb, parameters)
        if output_dir:
            await asyncio.to_thread(files.check_empty, job_dir)
        start = JobStart(user, tuple(groups), resources, image, info, policy, mounts)
        try:
            alloc = await s._db(start.reserve_call(s, job_id), queue_id=None)
        except CapacityError as e:
            if e.never_fits or getattr(policy, "on_full", "refuse") != "queue":
                raise
            alloc = None  # no room right now: the job waits in the start queue
        made_dir = False
        try:
            made_dir = await asyncio.to_thread(files.prepare, job_dir, injected)
            job = await s._db(
                store.add,
                s.ledger,
                status="running" if alloc is not None else "queued",
                id=job_id,
                owner=user,
                groups=list(groups),
                name=name or os.path.basename(notebook),
                notebook=notebook,
                job_dir=job_dir,
                parameters=parameters,
                folders=list(folders) if folders else None,
                image=image,
                resources=resources.to_dict(),
                time_limit=limit,
                allocation_id=alloc.id if alloc is not None else None,
            )
        except BaseException as e:
            if alloc is not None:
                await s._db(s.ledger.release, alloc.id, "failed", message=getattr(e, "message", str(e))[:500])
            if made_dir:  # nothing was recorded: leave no trace of a job that never was
                await asyncio.to_thread(shutil.rmtree, job_dir, True)
            raise
        if alloc is None:
            self.log.info("Job %s of %s waits for room: %s (%s)", job_id, user, notebook, resources.describe())
            self._start_in_turn(job, start)
            return job
        return await self._launch(job, start, alloc)

    async def _id_taken(self, user: str, job_id: str) -> bool:
        """Whether ``user`` has a job ``job_id`` already (ids are per owner: another user's is none of this)."""
        try:
            await self.get(user, job_id)
        except NotFoundError:
            return False
        return True

    async def _launch(self, job: Job, start: JobStart, alloc) -> Job:
        """Start the container of an admitted job (``alloc`` reserved for it); follow it until it ends."""
        s = self.service
        try:
            spec = job_spec(
                owner=job.owner,
                job_id=job.id,
                allocation_id=alloc.id,
                image=start.image,
                resources=start.resources,
                job_dir=job.job_dir,
                network=await s._user_network(job.owner),
                mounts=start.mounts,
                site=s.site_id,
            )
            allocation_plan.place(s, spec, alloc)
            container = await s.runtime.run(spec)
            await s._db(s.ledger.mark_running, alloc.id, container.id, image_digest=start.info.digest)
            job = await s._db(store.set_container, s.ledger, job.owner, job.id, container.id)
        except BaseException as e:
            message = getattr(e, "message", str(e))[:500]
            await s._db(s.ledger.release, alloc.id, "failed", message=message)
            await s._db(
                store.finish, s.ledger, job.owner, job.id, status="failed", reason="start", message=message,
                exit_code=None,
            )  # fmt: skip
            raise
        self.log.info(
            "Started job %s for %s: %s in %s (%s)", job.id, job.owner, job.notebook, start.image,
            start.resources.describe(),
        )  # fmt: skip
        self.follow(job)
        return job

    def _start_in_turn(self, job: Job, start: JobStart) -> None:
        """Wait in the start queue in the background, then start (idempotent)."""
        if job.key not in self._starting:
            task = asyncio.ensure_future(self._wait_for_turn(job, start))
            self._starting[job.key] = task
            task.add_done_callback(lambda _t, key=job.key: self._starting.pop(key, None))

    async def _wait_for_turn(self, job: Job, start: JobStart) -> None:
        s = self.service
        reserve = start.reserve_call(s, job.id)
        try:
            alloc = await start_queue.reserve_in_turn(
                s, start.policy, lambda queue_id: reserve(queue_id=queue_id), owner=job.owner, subject=job.id,
                request=start.resources, log=self.log, what="job", keep_place=True,
            )  # fmt: skip
        except asyncio.CancelledError:
            raise  # the service stops: the job keeps its place for the restarted service
        except Exception as e:  # cancelled by its owner, its queue_timeout, or it can no longer be admitted
            if not (await self.get(job.owner, job.id)).queued:
                return  # another process took this job's turn (its row was admitted there)
            cancelled = isinstance(e, start_queue.StartCancelled)
            message = getattr(e, "message", str(e))[:500]
            await s._db(
                store.finish, s.ledger, job.owner, job.id, status="cancelled" if cancelled else "failed",
                reason="cancelled" if cancelled else "queue", message=message, exit_code=None,
            )  # fmt: skip
            self.log.info("Job %s of %s did not start: %s", job.id, job.owner, message)
            return
        try:
            job = await s._db(store.admitted, s.ledger, job.owner, job.id, alloc.id)
        except BaseException:
            await s._db(s.ledger.release, alloc.id, "failed", message="the job's record could not be updated")
            raise
        try:
            await self._launch(job, start, alloc)
        except Exception:  # recorded by _launch; the job list says why
            self.log.exception("Job %s of %s could not start in its turn", job.id, job.owner)

    async def _start_of(self, job: Job) -> JobStart:
        """What a queued job needs to start, resolved again (a restarted service resumes its wait)."""
        s = self.service
        policy = await s.policy_for(job.owner, job.groups)
        info = catalog.find(await s.images.catalog_view(), job.image)
        mounts = await s.folders.folder_mounts(job.owner, job.groups, list(job.folders)) if job.folders else []
        return JobStart(job.owner, job.groups, Resources.parse(job.resources), job.image, info, policy, mounts)

    # ---- follow and finish ----------------------------------------------------------------
    def follow(self, job: Job) -> None:
        """Follow a running job in this process until it ends (idempotent)."""
        if job.key not in self._followers:
            task = asyncio.ensure_future(self._wait_and_end(job))
            self._followers[job.key] = task
            task.add_done_callback(lambda _t, key=job.key: self._followers.pop(key, None))

    async def _wait_and_end(self, job: Job) -> None:
        runtime = self.service.runtime
        timeout = None
        if job.time_limit:
            elapsed = (datetime.now(timezone.utc) - (job.started_at or job.created_at)).total_seconds()
            timeout = max(0.0, job.time_limit - elapsed)
        try:
            try:
                await runtime.wait(job.container_id, timeout=timeout)
            except TimeoutError:
                self._stopping[job.key] = "time limit"
                await runtime.stop(job.container_id, timeout=self.service.stop_timeout)
            except NotFoundError:
                pass
            await self._end(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep the service going; the next start records the end
            self.log.exception("Following job %s failed", job.id)

    async def _end(self, job: Job) -> Job:
        """Record the end of a job whose container has stopped (or is gone), release its allocation."""
        s = self.service
        stopped = self._stopping.pop(job.key, None)
        result = await asyncio.to_thread(files.read_json, job.job_dir, "result.json")
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
            job.owner,
            job.id,
            status=out.status,
            reason=out.reason,
            message=out.message,
            exit_code=out.exit_code,
        )
        self.log.info("Job %s of %s ended: %s (%s)", job.id, job.owner, out.status, out.message)
        return ended or await self.get(job.owner, job.id)

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
        (with the job's own reason in its usage record) of those whose container stopped while it was away;
        queued jobs wait for their turn again, in the place they had. Returns how many are followed."""
        count = 0
        now = datetime.now(timezone.utc)
        active = await self.service._db(
            store.find, self.service.ledger, owner=owner, status=("queued", "running"), limit=10_000
        )
        for job in reversed(active):  # oldest first
            if job.queued:
                if follow:
                    count += await self._resume_queued(job)
                continue
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

    async def take_turn(self, job: Job) -> bool:
        """Wait for a queued job's turn in this process (``berth run --attach``), then start it."""
        return bool(await self._resume_queued(job))

    async def _resume_queued(self, job: Job) -> int:
        try:
            start = await self._start_of(job)
        except BerthError as e:  # its image or a folder is gone since: say so in its record
            message = f"the job could not start after the service restarted: {e.message}"[:500]
            s = self.service
            await s._db(
                store.finish,
                s.ledger,
                job.owner,
                job.id,
                status="failed",
                reason="start",
                message=message,
                exit_code=None,
            )
            return 0
        self._start_in_turn(job, start)
        return 1

    async def stop(self) -> None:
        """Stop following (the service is stopping); the containers keep running, queued jobs their place."""
        tasks = [*self._followers.values(), *self._starting.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- what users ask -------------------------------------------------------------------
    async def offer(self, user: str, groups=()) -> dict:
        """What ``user`` may run as a job: allowed images, fitting presets, the default request (:mod:`.offer`)."""
        return await job_offer(self.service, user, groups)

    async def get(self, user: str, job_id: str) -> Job:
        """``user``'s job ``job_id`` (job ids are per owner: another user's job is "not found")."""
        return await self.service._db(store.get, self.service.ledger, job_id, user)

    async def list(self, user: str | None, status: str | None = None) -> list[Job]:
        return await self.service._db(store.find, self.service.ledger, owner=user, status=status)

    async def cancel(self, user: str, job_id: str) -> Job:
        """Stop a queued or running job (its owner's; another user's job is "not found"); an ended job is
        returned as is."""
        s = self.service
        job = await self.get(user, job_id)
        if job.queued:
            await s._db(start_queue.cancel, s.ledger, job.owner, job.id)
            task = self._starting.get(job.key)
            if task is not None:
                await asyncio.shield(task)
            else:  # nobody waits for it in this process (e.g. `berth run --cancel`)
                await s._db(
                    store.finish, s.ledger, job.owner, job.id, status="cancelled", reason="cancelled",
                    message="the job was cancelled by its owner before it started", exit_code=None,
                )  # fmt: skip
            job = await self.get(user, job_id)
        if not job.running:
            return job  # ended (or cancelled while it waited)
        self._stopping[job.key] = "cancelled"
        if job.container_id:
            await s.runtime.stop(job.container_id, timeout=s.stop_timeout)
        task = self._followers.get(job.key)
        if task is not None:
            await asyncio.shield(task)
            return await self.get(user, job_id)
        return await self._end(job)

    async def wait(self, user: str, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended (``TimeoutError`` after ``timeout`` seconds); a queued job first waits
        for its turn."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        job = await self.get(user, job_id)
        while job.active:
            task = self._starting.get(job.key) or self._followers.get(job.key)
            if task is None:
                break  # followed by another process
            left = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait_for(asyncio.shield(task), left)
            job = await self.get(user, job_id)
        return job

    async def waiting_ahead(self, user: str) -> dict[str, int]:
        """For ``user``'s queued jobs: how many starts wait ahead of each (job id -> count)."""
        s = self.service
        return {w["kernel_id"]: w["ahead"] for w in await s._db(start_queue.of_owner, s.ledger, user)}

    async def read_output(self, user: str, job_id: str) -> dict:
        """The job's output notebook as it is now (partial while it runs: it is rewritten after every cell)."""
        job = await self.get(user, job_id)
        nb = await asyncio.to_thread(files.read_json, job.job_dir, "output.ipynb")
        if nb is None:
            raise NotFoundError(f"job {job_id} has no output notebook yet ({job.status}: no cell has finished)")
        return nb

    async def read_log(self, user: str, job_id: str, offset: int = 0) -> tuple[str, int]:
        """The job's log from byte ``offset``: ``(text, next offset)``."""
        job = await self.get(user, job_id)
        return await asyncio.to_thread(files.read_log, job.job_dir, offset)


__all__ = ["Job", "JobManager"]
