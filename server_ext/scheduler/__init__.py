"""Berth as jupyter-scheduler's backend: JupyterLab's "Create job" dialog, job list and schedules run
notebooks as Berth batch jobs (``jupyter_berth.jobs``), each in its own container, not in the server.

Configure (docs/jobs.md)::

    c.SchedulerApp.environment_manager_class = "jupyter_berth.server.scheduler.BerthEnvironmentManager"
    c.SchedulerApp.scheduler_class = "jupyter_berth.server.scheduler.BerthScheduler"

``environments``: the Create-job dialog's environments are the image versions the user's policy allows,
its compute types the presets that fit the policy. ``scheduler``: ``BerthScheduler`` submits each job
(and each run of a schedule) to the Berth service and reads its state back from it. ``execution``:
``BerthExecutionManager`` turns one scheduler job into a Berth job and a finished Berth job into the
scheduler's record and output files. ``backend``: how the server reaches the service (standalone: the embedded service; hub mode: ``remote``,
the hub's service over REST, the output downloaded into the scheduler's folder when a job ends).
"""

from .environments import BerthEnvironmentManager
from .execution import BerthExecutionManager
from .scheduler import BerthScheduler, BerthTaskRunner

__all__ = ["BerthEnvironmentManager", "BerthExecutionManager", "BerthScheduler", "BerthTaskRunner"]
