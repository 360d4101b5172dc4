"""``BerthExecutionManager``: one jupyter-scheduler job as a Berth batch job.

jupyter-scheduler's own execution managers run the notebook in a child process of the server;
this one hands it to the Berth service instead (its own container, admitted like a kernel), so the
run survives the server. It is driven by :class:`~.scheduler.BerthScheduler`: :meth:`submit` when the
job is created (or a schedule fires), :meth:`finish` when the Berth job has ended, which writes the
scheduler's output files (notebook, HTML) and its status. The Berth job keeps the scheduler's job id.

Its files go straight to the user's work directory, into the folder jupyter-scheduler downloads
into (``jobs/<notebook>-<job id>/``): ``output.ipynb``, ``job.log``, side files, and the output files
under the scheduler's names, so the job list's links work without a download step. In hub mode the
hub's service keeps the job's files: its output notebook and log are downloaded into that folder first
(:meth:`~.remote.RemoteJobs.download`), then written the same way.
"""

from __future__ import annotations

import os
import shutil

from jupyter_scheduler.exceptions import SchedulerError
from jupyter_scheduler.executors import ExecutionManager
from jupyter_scheduler.models import JobFeature, Status
from jupyter_scheduler.orm import Job
from jupyter_scheduler.utils import get_utc_timestamp

from jupyter_berth.errors import BerthError
from jupyter_berth.jobs.notebook import typed_value

from .environments import DEFAULT_COMPUTE

#: Berth job status → scheduler status.
STATUSES = {
    "queued": Status.QUEUED,
    "running": Status.IN_PROGRESS,
    "completed": Status.COMPLETED,
    "failed": Status.FAILED,
    "cancelled": Status.STOPPED,
}
#: ``runtime_environment_parameters`` a job may carry (the REST API; the dialog sends presets as compute types).
RESOURCE_PARAMETERS = ("cpu", "mem", "gpu")


class BerthExecutionManager(ExecutionManager):
    """Submits a scheduler job to Berth and records the Berth job's end in the scheduler's database."""

    def __init__(self, job_id: str, root_dir: str, db_url: str, staging_paths: dict, output_dir: str = ""):
        super().__init__(job_id=job_id, root_dir=root_dir, db_url=db_url, staging_paths=staging_paths)
        self.output_dir = output_dir

    def berth_request(self) -> dict:
        """The scheduler's job model as ``submit_job`` arguments."""
        job = self.model
        env = self._raw_environment_parameters()
        request = {k: env[k] for k in RESOURCE_PARAMETERS if env.get(k) not in (None, "")}
        folders = env.get("folders")
        return {
            "notebook": self.staging_paths["input"],
            "parameters": {k: typed_value(str(v)) for k, v in (job.parameters or {}).items()},
            "request": request or None,
            "preset": job.compute_type if job.compute_type and job.compute_type != DEFAULT_COMPUTE else None,
            "image": job.runtime_environment_name or None,
            "folders": [f.strip() for f in str(folders).split(",") if f.strip()] if folders else None,
            "time_limit": env.get("time_limit") or None,
            "name": job.name,
            "output_dir": self.output_dir,
            "job_id": job.job_id,
        }

    def _raw_environment_parameters(self) -> dict:
        """As stored: jupyter-scheduler's model reads 0.5 back as int 0 (its Union[int, float, ...] value type)."""
        with self.db_session() as session:
            raw = session.query(Job.runtime_environment_parameters).filter(Job.job_id == self.job_id).scalar()
        return {
            k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for k, v in (raw or {}).items()
        }

    async def submit(self, jobs) -> dict:
        """Start the Berth job; a refusal marks the scheduler job failed with Berth's message and is raised."""
        self.before_start()
        try:
            return await jobs.submit(**self.berth_request())
        except BerthError as e:
            self._record(Status.FAILED, e.message)
            raise

    def finish(self, berth: dict) -> Status:
        """Write the scheduler's output files and status for an ended Berth job (``berth``: its JSON)."""
        status = STATUSES[berth["status"]]
        try:
            self._write_outputs(berth)
        except Exception as e:  # noqa: BLE001 - the status must be recorded whatever the copy did
            self._record(status, f"{berth['message']} (output files not written: {e})")
            return status
        self._record(status, None if status == Status.COMPLETED else berth["message"])
        return status

    def _write_outputs(self, berth: dict) -> None:
        """The scheduler's output files (and its input) beside the job's own files; a format that fails is named."""
        job = self.model
        source = os.path.join(berth["job_dir"], "output.ipynb") if berth.get("job_dir") else ""
        if not source or not os.path.exists(source):
            return  # failed before the first cell ran: nothing to show
        failed = []
        for fmt in job.output_formats or []:
            target = os.path.join(berth["job_dir"], os.path.basename(self.staging_paths[fmt]))
            try:
                if fmt == "ipynb":
                    shutil.copyfile(source, target)
                else:
                    import nbconvert
                    import nbformat

                    body, _ = nbconvert.get_exporter(fmt)().from_notebook_node(nbformat.read(source, as_version=4))
                    with open(target, "w", encoding="utf-8") as f:
                        f.write(body)
                shutil.copyfile(target, self.staging_paths[fmt])
            except Exception as e:  # noqa: BLE001 - one format failing leaves the others
                failed.append(f"{fmt}: {e}")
        original = os.path.join(berth["job_dir"], job.input_filename)
        if not os.path.exists(original):
            shutil.copyfile(self.staging_paths["input"], original)
        if failed:
            raise RuntimeError("; ".join(failed))

    def _record(self, status: Status, message: str | None) -> None:
        with self.db_session() as session:
            values = {"status": status, "status_message": message}
            if status != Status.IN_PROGRESS:
                values["end_time"] = get_utc_timestamp()
            session.query(Job).filter(Job.job_id == self.job_id).update(values)
            session.commit()

    def execute(self):
        """jupyter-scheduler's child-process entry point: Berth jobs are not run in a child of the server."""
        raise SchedulerError(
            "BerthExecutionManager runs jobs through the Berth service; set "
            "c.SchedulerApp.scheduler_class = 'jupyter_berth.server.scheduler.BerthScheduler'"
        )

    def validate(cls, input_path: str) -> bool:  # called as cls.validate(cls, path), like the base class
        """Any notebook: Berth picks the kernel from the image, the notebook needs no kernelspec."""
        return input_path.endswith(".ipynb") and os.path.isfile(input_path)

    def supported_features(cls) -> dict[JobFeature, bool]:
        return {
            JobFeature.job_name: True,
            JobFeature.output_formats: True,
            JobFeature.job_definition: True,
            JobFeature.idempotency_token: True,
            JobFeature.tags: True,
            JobFeature.email_notifications: False,
            JobFeature.timeout_seconds: False,
            JobFeature.retry_on_timeout: False,
            JobFeature.max_retries: False,
            JobFeature.min_retry_interval_millis: False,
            JobFeature.output_filename_template: False,
            JobFeature.stop_job: True,
            JobFeature.delete_job: True,
        }
