"""``berth run NOTEBOOK``: run a notebook as a Berth batch job, follow its log, exit with its status.

For people without JupyterLab (VS Code, scripts, cron)::

    berth run train.ipynb --cpu=4 --mem=16G --gpu=0.5 -p alpha 0.5 -p epochs 20
    berth run report.ipynb --preset=small --time-limit=3600 --detach

The job is admitted like a kernel (the same policies and messages) and runs in its own container;
``output.ipynb``, ``job.log`` and the files the notebook writes land in a new folder under
``berth-jobs/`` next to the notebook (or ``--output-dir``). Parameters are typed as papermill types
them (``3`` → int, ``0.5`` → float, ``True``, ``None``, else a string) and injected after the cell
tagged ``parameters``. The command runs an embedded Berth service as the local user (standalone).

Exit status: 0 the job completed; 1 it failed (a cell raised, out of memory, time limit, lost) or
was cancelled; 2 the request was malformed; Berth's usual codes when refused. Ctrl-C cancels the
job unless ``--detach`` was given (then the job goes on; ``berth run --attach=ID`` follows it again).
"""

from __future__ import annotations

import asyncio
import sys

from traitlets import Bool, Float, List, Unicode

from ..errors import RequestError
from ..jobs.notebook import typed_value
from ..resources import Resources
from ..service import BerthService, standalone_user
from .command import BerthCommand

#: What ``--cpu=2 --mem=4G --gpu=0.5`` become in the job's request.
_RESOURCE_OPTIONS = ("cpu", "mem", "gpu")


def split_parameters(argv: list[str]) -> tuple[list[str], dict]:
    """Take ``-p NAME VALUE`` / ``--parameter NAME VALUE`` pairs out of ``argv`` (traitlets cannot parse them)."""
    rest, parameters = [], {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "--parameter", "--parameters"):
            if i + 2 >= len(argv):
                raise RequestError("-p", "give a name and a value: -p alpha 0.5")
            parameters[argv[i + 1]] = typed_value(argv[i + 2])
            i += 3
            continue
        rest.append(arg)
        i += 1
    return rest, parameters


class RunApp(BerthCommand):
    name = "berth run"
    description = "Run a notebook as a batch job in its own Berth container; follow its log; exit with its status."
    examples = """
    berth run train.ipynb --cpu=2 --mem=4G -p alpha 0.5 -p epochs 20
    berth run report.ipynb --preset=small --folder=datasets --time-limit=3600
    berth run report.ipynb --detach          # print the job id and return
    berth run --attach=JOB_ID                # follow a job again
    berth run --cancel=JOB_ID
    berth run --list                         # your jobs, newest first
    """
    classes = [BerthService]

    cpu = Unicode("", config=True, help="CPU cores for the job (e.g. 0.5, 4). Default: preset, profile or policy.")
    mem = Unicode("", config=True, help="Memory for the job (e.g. 512M, 16G).")
    gpu = Unicode("", config=True, help="GPU share (0.25) or whole GPUs (1, 2).")
    preset = Unicode("", config=True, help="A preset's name (berth kernelspecs lists them).")
    image = Unicode("", config=True, help="Image version to run in (default: your profile's or the site's).")
    folders = List(Unicode(), config=True, help="Folders to mount at /home/jovyan/folders/<name> (repeat --folder).")
    time_limit = Float(0.0, config=True, help="Seconds after which the job is stopped (0: the site's default).")
    output_dir = Unicode("", config=True, help="Where the job's files go (a new or empty folder).")
    job_name = Unicode("", config=True, help="A name for the job list (default: the notebook's file name).")
    detach = Bool(False, config=True, help="Submit, print the job id and return without following.")
    attach = Unicode("", config=True, help="Follow the job with this id (already submitted) instead of submitting.")
    cancel = Unicode("", config=True, help="Cancel the job with this id.")
    list_jobs = Bool(False, config=True, help="List your jobs (newest first) and return.")

    aliases = {
        "cpu": "RunApp.cpu",
        "mem": "RunApp.mem",
        "gpu": "RunApp.gpu",
        "preset": "RunApp.preset",
        "image": "RunApp.image",
        "folder": "RunApp.folders",
        "time-limit": "RunApp.time_limit",
        "output-dir": "RunApp.output_dir",
        "name": "RunApp.job_name",
        "attach": "RunApp.attach",
        "cancel": "RunApp.cancel",
        "data-dir": "BerthService.data_dir",
        "db-url": "BerthService.db_url",
    }
    flags = {
        "detach": ({"RunApp": {"detach": True}}, "Submit and return; the job runs on."),
        "list": ({"RunApp": {"list_jobs": True}}, "List your jobs and return."),
    }

    parameters: dict = {}

    def parse_command_line(self, argv=None):
        argv = sys.argv[1:] if argv is None else list(argv)
        argv, self.parameters = split_parameters(argv)
        super().parse_command_line(argv)

    def start(self):
        sys.exit(asyncio.run(self.run()))

    def request(self) -> dict | None:
        request = {k: getattr(self, k) for k in _RESOURCE_OPTIONS if getattr(self, k)}
        return request or None

    async def run(self) -> int:
        user, groups = standalone_user()
        # A helper beside any running service on the same ledger: it follows its own job only, and
        # neither reconciles nor keeps a warm pool (that is the running service's business).
        service = BerthService(parent=self, pool_size=0, sample_interval=0)
        await service.start(adopt=False)
        try:
            if self.list_jobs:
                await service.jobs.resume(user, follow=False)  # record the end of jobs nobody followed
                for job in await service.jobs.list(user):
                    print(f"{job.id}  {job.created_at:%Y-%m-%d %H:%M}  {job.status:9}  {job.name}  {job.reason or ''}")
                return 0
            if self.cancel:
                job = await service.jobs.cancel(user, self.cancel)
                print(f"job {job.id}: {job.status} ({job.message or job.reason})")
                return 0
            if self.attach:
                job = await service.jobs.get(user, self.attach)
                if job.running:
                    service.jobs.follow(job)
                elif job.queued:  # wait for its turn here (a detached job's turn is taken by whoever follows it)
                    await service.jobs.take_turn(job)
            else:
                if len(self.extra_args) != 1:
                    raise RequestError("notebook", "name one notebook: berth run NOTEBOOK.ipynb [options]")
                job = await service.jobs.submit(
                    user,
                    groups,
                    notebook=self.extra_args[0],
                    parameters=self.parameters,
                    request=self.request(),
                    preset=self.preset or None,
                    image=self.image or None,
                    folders=list(self.folders) or None,
                    time_limit=self.time_limit or None,
                    name=self.job_name or None,
                    output_dir=self.output_dir or None,
                )
                limits = Resources.parse(job.resources).describe()
                print(f"[berth] job {job.id} started: {job.image}, {limits}; files in {job.job_dir}", file=sys.stderr)
            if self.detach:
                print(job.id)
                return 0
            try:
                job = await follow(service, user, job.id)
            except (KeyboardInterrupt, asyncio.CancelledError):
                job = await service.jobs.cancel(user, job.id)
            print(
                f"[berth] job {job.id} {job.status}: {job.message}; output: {job.job_dir}/output.ipynb", file=sys.stderr
            )
            return 0 if job.status == "completed" else 1
        finally:
            await service.stop()


async def follow(service: BerthService, user: str, job_id: str, interval: float = 0.5, out=None):
    """Print the job's log as it grows until the job has ended; return the ended job."""
    out = out or sys.stdout
    offset = 0
    while True:
        job = await service.jobs.get(user, job_id)
        text, offset = await service.jobs.read_log(user, job_id, offset)
        if text:
            out.write(text)
            out.flush()
        if not job.active and not text:
            return job
        if job.active:  # queued (waiting for room) or running
            await asyncio.sleep(interval)
