"""Batch jobs: a notebook with parameters, run to the end in its own Berth container.

``manager.JobManager`` (composed into the service as ``service.jobs``) admits, starts, follows and
records jobs; ``notebook`` types and injects parameters; ``container`` builds the job's container
and reads its end; ``store`` holds the jobs table's queries; ``run_notebook.py`` is what runs
inside the container. Front ends call the service's ``submit_job`` / ``get_job`` / ``list_jobs`` /
``cancel_job`` / ``job_log`` / ``wait_job``.
"""

from .manager import JobManager
from .store import Job

__all__ = ["Job", "JobManager"]
