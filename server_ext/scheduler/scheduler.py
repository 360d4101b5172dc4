"""``BerthScheduler``: jupyter-scheduler's scheduler with Berth jobs in place of child processes.

The scheduler's database stays jupyter-scheduler's (job list, definitions, schedules); what runs
and how it ended is the Berth service's. ``create_job`` copies the input to the staging area as
usual, then submits a Berth job with the same id (:class:`~.execution.BerthExecutionManager`) and
follows it; ``stop_job`` cancels it; ``get_job`` / ``list_jobs`` first bring running jobs up to date
from the service, so a job that finished while this server was stopped shows its end at the next
look. Scheduled runs come from :class:`BerthTaskRunner`, which submits the same way.

The handlers await whatever these methods return (``ensure_async``), so they are coroutines here.
"""

from __future__ import annotations

import asyncio

from jupyter_scheduler.exceptions import IdempotencyTokenError, InputUriError, SchedulerError
from jupyter_scheduler.models import CreateJob, DescribeJob, Status
from jupyter_scheduler.orm import Job
from jupyter_scheduler.scheduler import Scheduler
from jupyter_scheduler.task_runner import TaskRunner
from traitlets import Float
from traitlets import Type as TType

from jupyter_berth.errors import BerthError, NotFoundError

from .backend import jobs_backend
from .environments import BerthEnvironmentManager
from .execution import BerthExecutionManager

#: Scheduler states whose Berth job may still be running.
ACTIVE = (Status.IN_PROGRESS, Status.STOPPING)


class BerthTaskRunner(TaskRunner):
    """Runs a schedule's jobs through :class:`BerthScheduler` (its ``create_job`` is a coroutine)."""

    def create_job(self, job_definition_id: str):
        definition = self.scheduler.get_job_definition(job_definition_id)
        if definition and definition.active:
            input_uri = self.scheduler.get_staging_paths(definition)["input"]
            model = CreateJob(
                **definition.dict(exclude={"schedule", "timezone"}, exclude_none=True), input_uri=input_uri
            )
            task = asyncio.ensure_future(self.scheduler.create_job(model))
            task.add_done_callback(self._report)

    def _report(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.log.warning("Berth: a scheduled job was not started: %s", task.exception())


class BerthScheduler(Scheduler):
    """``c.SchedulerApp.scheduler_class``: every job a Berth batch job in its own container."""

    execution_manager_class = TType(
        default_value=BerthExecutionManager,
        klass="jupyter_scheduler.executors.ExecutionManager",
        config=True,
        help="Turns a scheduler job into a Berth job (keep the default).",
    )
    task_runner_class = TType(
        allow_none=True,
        config=True,
        default_value=BerthTaskRunner,
        klass="jupyter_scheduler.task_runner.BaseTaskRunner",
        help="Creates the jobs of schedules (BerthTaskRunner submits them to Berth).",
    )
    follow_timeout = Float(
        0.0,
        config=True,
        help="Seconds the server follows one running job before leaving it to the next look (0: until it ends).",
    )

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._followers: dict[str, asyncio.Task] = {}
        if isinstance(self.environments_manager, BerthEnvironmentManager):
            self.environments_manager.bind(self.config, parent=self)

    async def _jobs(self):
        try:
            return await jobs_backend(config=self.config, parent=self)
        except BerthError as e:
            raise SchedulerError(e.message) from None

    def _manager(self, model: DescribeJob) -> BerthExecutionManager:
        return self.execution_manager_class(
            job_id=model.job_id,
            root_dir=self.root_dir,
            db_url=self.db_url,
            staging_paths=self.get_staging_paths(model),
            output_dir=self.get_local_output_path(model),
        )

    async def create_job(self, model: CreateJob) -> str:
        if not model.job_definition_id and not self.file_exists(model.input_uri):
            raise InputUriError(model.input_uri)
        jobs = await self._jobs()
        with self.db_session() as session:
            if (
                model.idempotency_token
                and session.query(Job).filter(Job.idempotency_token == model.idempotency_token).first()
            ):
                raise IdempotencyTokenError(model.idempotency_token)
            model.output_formats = model.output_formats or []
            job = Job(**model.dict(exclude_none=True, exclude={"input_uri"}))
            session.add(job)
            session.commit()
            described = DescribeJob.from_orm(job)
        staging = self.get_staging_paths(described)
        self.copy_input_file(model.input_uri, staging["input"])
        manager = self._manager(described)
        try:
            await manager.submit(jobs)
        except BerthError as e:
            raise SchedulerError(e.message) from None
        self._follow(described.job_id)
        return described.job_id

    def _follow(self, job_id: str) -> None:
        if job_id not in self._followers:
            task = asyncio.ensure_future(self._wait_and_finish(job_id))
            self._followers[job_id] = task
            task.add_done_callback(lambda _t: self._followers.pop(job_id, None))

    async def _wait_and_finish(self, job_id: str) -> None:
        try:
            jobs = await self._jobs()
            berth = await jobs.wait(job_id, timeout=self.follow_timeout or None)
            if berth["status"] not in ("queued", "running"):  # a queued job waits in the start queue
                await self._finish(job_id, berth, jobs)
        except (asyncio.TimeoutError, asyncio.CancelledError):
            pass
        except Exception:  # the next get/list brings it up to date
            self.log.exception("Berth: following job %s failed", job_id)

    async def _finish(self, job_id: str, berth: dict, jobs) -> None:
        model = super().get_job(job_id, False)
        if model.status in ACTIVE:
            manager = self._manager(model)
            if hasattr(jobs, "download") and berth.get("id"):  # hub mode: the files are the service's
                try:
                    berth = await jobs.download(berth, manager.output_dir)
                except BerthError as e:
                    berth = {**berth, "job_dir": "", "message": f"{berth['message']} (output not downloaded: {e})"}
            manager.finish(berth)

    async def sync(self, job_ids: list[str] | None = None) -> int:
        """Bring running jobs (all, or ``job_ids``) up to date from the Berth service; returns how many ended."""
        with self.db_session() as session:
            query = session.query(Job.job_id).filter(Job.status.in_([s.value for s in ACTIVE]))
            if job_ids is not None:
                query = query.filter(Job.job_id.in_(job_ids))
            active = [row[0] for row in query.all()]
        if not active:
            return 0
        jobs = await self._jobs()
        ended = 0
        for job_id in active:
            try:
                berth = await jobs.get(job_id)
            except NotFoundError:
                berth = {"status": "failed", "message": "Berth has no record of this job", "job_dir": ""}
            if berth["status"] not in ("queued", "running"):  # a queued job waits in the start queue
                await self._finish(job_id, berth, jobs)
                ended += 1
            else:
                self._follow(job_id)
        return ended

    async def get_job(self, job_id: str, job_files: bool | None = True) -> DescribeJob:
        await self.sync([job_id])
        return super().get_job(job_id, job_files)

    async def list_jobs(self, query):
        await self.sync()
        return super().list_jobs(query)

    async def stop_job(self, job_id: str) -> None:
        model = super().get_job(job_id, False)
        if model.status not in ACTIVE:
            return
        jobs = await self._jobs()
        with self.db_session() as session:
            session.query(Job).filter(Job.job_id == job_id).update({"status": Status.STOPPING})
            session.commit()
        berth = await jobs.cancel(job_id)
        await self._finish(job_id, berth, jobs)

    async def delete_job(self, job_id: str) -> None:
        await self.stop_job(job_id)
        super().delete_job(job_id)  # the job's Berth record stays (usage); its staging files go
