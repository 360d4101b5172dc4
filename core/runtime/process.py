"""The process runtime: each kernel a local process, where no container engine exists (Binder).

**No isolation.** A process kernel runs as the user the server runs as, sees the
same files, network and processes as the server does, and could read the
server's own files (its token included). It is meant for one person's server
where no container engine answers — a Binder, a laptop without Docker — and
refuses kernels of any other user (``single_user``).

What it keeps of the container model, behind the same :class:`Runtime` interface:

* **limits**: a cgroup per kernel where the cgroup filesystem is writable, rlimits
  otherwise (:mod:`.process_limits`; the kernel's info says which applied and
  what each limit became; CPU is not bounded under rlimits);
* **connection**: the kernel listens on 127.0.0.1 on ports picked free here, and
  the info returned by :meth:`run` carries them (``ProcessInfo.ports``) so the
  service hands the provisioner this address and these ports;
* **state**: one JSON record per kernel (:mod:`.process_state`), so a restarted
  service adopts the kernels still running and releases those gone;
* **images**: the "image" is the local Python environment, listed as one pseudo
  image (``local/python:3.11``) with Berth's labels so the catalog, kernelspecs and
  sidebar work unchanged;
* **folders**: the folders a kernel would mount appear as symlinks in a directory
  of its own (``$BERTH_FOLDERS_DIR``); read-only cannot be enforced;
* **networks**: none (every kernel is on the host's loopback); the calls are no-ops.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import os
import platform
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from traitlets import Bool, Enum, Unicode

from ..errors import ConflictError, EngineError, NotFoundError, PolicyError, RequestError
from ..resources import Resources, parse_memory
from . import process_limits
from .base import ContainerInfo, ContainerSpec, ContainerUsage, Runtime
from .hardening import validate_name
from .labels import MANAGED, MANAGED_VALUE, OWNER, full_labels, key
from .process_launch import EXEC_SHIM, ProcessLaunchMixin, wait_for_exec
from .process_state import UNKNOWN_EXIT, ProcessRecord, StateDir, boot_id, is_alive, now_iso, proc_stat

log = logging.getLogger(__name__)

#: Popen objects of the kernels this server process started (by pid), shared by every runtime
#: instance, so whichever asks first reaps the exit status.
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass
class ProcessInfo(ContainerInfo):
    """:class:`ContainerInfo` plus what only a process kernel has."""

    ports: dict | None = None  #: the kernel's ports on ``ip`` (the service puts them in the connection info)
    limits: dict = field(default_factory=dict)  #: what enforces each limit ({"mechanism", "mem", "cpu", "pids", ...})
    pid: int | None = None


def _local_user() -> str:
    return os.environ.get("BERTH_USER") or getpass.getuser()


def _has_labels(have: dict, wanted: dict) -> bool:
    return all(have.get(k) == v for k, v in wanted.items())


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ProcessRuntime(ProcessLaunchMixin, Runtime):
    """Kernels as local processes of the server's user: limits, no isolation."""

    name = "process"
    #: what separates kernels from each other and from the server
    isolation = "none"

    state_dir = Unicode(
        "",
        config=True,
        help="Where the records of running process kernels are kept (a restarted "
        "server adopts them from there). Default: <BerthService.data_dir>/process-runtime.",
    )
    limits = Enum(
        ["auto", "cgroup", "rlimit"],
        "auto",
        config=True,
        help="How kernel limits are enforced: 'cgroup' (a cgroup per kernel: memory, CPU quota, pids; needs a "
        "writable cgroup filesystem, e.g. root), 'rlimit' (RLIMIT_AS for memory, RLIMIT_NPROC for "
        "processes, CPU not bounded) or 'auto' (a cgroup where one can be made, rlimits otherwise).",
    )
    cgroup_parent = Unicode(
        "",
        config=True,
        help="cgroup (path from the hierarchy's root) below which kernel cgroups "
        "are made, e.g. a delegated cgroup on cgroup v2. Empty: the server's own cgroup.",
    )
    rlimit_as_allowance = Unicode(
        "256M",
        config=True,
        help="Address space added to a kernel's memory limit for its "
        "RLIMIT_AS (rlimit mode): what the interpreter reserves but does not use (thread "
        "stacks, allocator arenas). Too small and kernels fail to start.",
    )
    single_user = Bool(
        True,
        config=True,
        help="Refuse kernels of any user but the one the server runs as "
        "(BERTH_USER or the operating-system user): a process kernel runs with that user's rights.",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="berth-process")
        self._state: StateDir | None = None
        self._mechanism: str | None = None
        self._last_ports: dict[str, dict] = {}  #: by kernel name: ports a restarted kernel tries to keep
        self._as_allowance = parse_memory(self.rlimit_as_allowance, "rlimit_as_allowance")

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def state(self) -> StateDir:
        if self._state is None:
            path = self.state_dir or os.path.join(
                os.environ.get("BERTH_DATA_DIR") or os.path.expanduser("~/.local/share/jupyter-berth"),
                "process-runtime",
            )
            self._state = StateDir(path)
        return self._state

    async def _run(self, fn, *args):
        return await asyncio.wrap_future(self._executor.submit(fn, *args))

    # -- engine ------------------------------------------------------------------------------------

    def limits_mechanism(self) -> str:
        """What bounds new kernels here: "cgroup v1", "cgroup v2" or "rlimit" (found once, with a probe cgroup)."""
        if self._mechanism is None:
            plan = process_limits.plan_limits(
                Resources(cpu=1, mem=64 * 1024**2),
                f"probe-{os.getpid()}",
                mode="rlimit" if self.limits == "rlimit" else "auto",
                parent=self.cgroup_parent or None,
                as_allowance=self._as_allowance,
            )
            process_limits.remove_cgroup(plan.cgroup)
            self._mechanism = plan.mechanism
            if plan.mechanism == "rlimit" and self.limits != "rlimit":
                self.log.info("Process kernels get rlimits, not cgroups: %s", plan.report.get("why"))
        return self._mechanism

    async def ping(self) -> dict:
        cap = await self._run(process_limits.host_capacity)
        mechanism = await self._run(self.limits_mechanism)
        return {
            "version": f"Python {platform.python_version()}",
            "runtime": self.name,
            "isolation": self.isolation,
            "limits": mechanism,
            "ncpu": cap["cpu"],
            "mem": cap["mem"],
            "node": os.uname().nodename,
            "state_dir": self.state.path,
            "python": self.python,
        }

    async def capacity(self) -> dict:
        cap = await self._run(process_limits.host_capacity)
        return {"cpu": cap["cpu"], "mem": cap["mem"], "node": os.uname().nodename}

    # -- images: the local environment ---------------------------------------------------------------

    async def list_images(self, label: str | None = None) -> list[tuple[str, dict]]:
        attrs = self._image_attrs()
        if label:
            name, _, value = label.partition("=")
            labels = attrs["Config"]["Labels"]
            if name not in labels or (value and labels[name] != value):
                return []
        return [(self.image_ref, attrs)]

    # -- start ---------------------------------------------------------------------------------------------

    def _check(self, spec: ContainerSpec) -> None:
        validate_name(spec.name)
        if spec.image not in (self.image_ref, self._image_attrs()["Id"]):
            raise NotFoundError(
                f"the image {spec.image} is not available: process kernels run in the local Python "
                f"environment, offered as {self.image_ref}"
            )
        owner = spec.labels.get(key(OWNER))
        if self.single_user and owner and owner != _local_user():
            raise PolicyError(
                f"this server runs kernels as local processes of {_local_user()} (no container engine "
                f"answered), which serves only that user, not {owner}; start a container engine "
                "(`berth engine up`) and restart the service",
                limit="single_user",
            )
        if not spec.command:
            raise RequestError("command", "a process kernel needs a command")

    def _start_sync(self, spec: ContainerSpec) -> ProcessRecord:
        self.state.ensure()
        taken = [r for r in self.state.all() if r.name == spec.name]
        if taken:
            raise ConflictError(f"a kernel named {spec.name} already exists ({taken[0].status}); remove it first")
        cid = secrets.token_hex(32)
        workdir = self.state.workdir(cid)
        os.makedirs(workdir, mode=0o700)
        plan = None
        try:
            argv, ports = self._command(spec, workdir)
            folders = self._link_folders(spec, workdir)
            plan = process_limits.plan_limits(
                spec.resources,
                cid[:16],
                mode=self.limits,
                parent=self.cgroup_parent or None,
                as_allowance=self._as_allowance,
            )
            shim = {
                "cgroup_procs": [os.path.join(d, "cgroup.procs") for d in sorted(set(plan.cgroup.values()))],
                "rlimits": plan.rlimits,
                "argv": argv,
            }
            cwd = spec.working_dir if spec.working_dir and os.path.isdir(spec.working_dir) else os.path.expanduser("~")
            with open(os.path.join(workdir, "output.log"), "ab") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", EXEC_SHIM, json.dumps(shim)],
                    cwd=cwd,
                    env=self._env(spec, folders, plan),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
        except BaseException as e:
            if plan is not None:
                process_limits.remove_cgroup(plan.cgroup)
            shutil.rmtree(workdir, ignore_errors=True)
            if isinstance(e, OSError):
                raise EngineError(f"could not start {spec.name}: {e}") from e
            raise
        _CHILDREN[proc.pid] = proc
        wait_for_exec(proc)
        stat = proc_stat(proc.pid)
        report = {"mechanism": plan.mechanism, **plan.report}
        record = ProcessRecord(
            id=cid,
            name=spec.name,
            labels={**spec.labels, key(MANAGED): MANAGED_VALUE},
            image=spec.image,
            image_id=self._image_attrs()["Id"],
            pid=proc.pid,
            start_ticks=stat[2] if stat else 0,
            boot_id=boot_id(),
            created=now_iso(),
            started_at=now_iso(),
            ip=self.ip,
            ports=ports,
            limits=report,
            cgroup=dict(plan.cgroup),
            workdir=workdir,
        )
        self.state.save(record)
        self.log.info(
            "Process kernel %s: pid %d on %s %s; limits: %s",
            spec.name,
            proc.pid,
            self.ip,
            sorted(ports.values()),
            report,
        )
        return self._refresh(record)

    async def run(self, spec: ContainerSpec) -> ContainerInfo:
        self._check(spec)
        record = await self._run(self._start_sync, spec)
        return self._info(record)

    # -- state ----------------------------------------------------------------------------------------

    def _refresh(self, record: ProcessRecord) -> ProcessRecord:
        """Bring a running record up to date: if its process has ended, record how."""
        if record.status != "running":
            return record
        proc = _CHILDREN.get(record.pid)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return record
            _CHILDREN.pop(record.pid, None)
            exit_code = 128 - code if code < 0 else code
        elif is_alive(record):
            return record
        else:
            exit_code = UNKNOWN_EXIT  # started by an earlier server process: its status went elsewhere
        record.status, record.exit_code, record.finished_at = "exited", exit_code, now_iso()
        record.oom_killed = bool(record.cgroup) and process_limits.oom_killed(record.cgroup)
        self.state.save(record)
        return record

    def _info(self, record: ProcessRecord) -> ProcessInfo:
        return ProcessInfo(
            id=record.id,
            name=record.name,
            status=record.status,
            labels=dict(record.labels),
            image=record.image,
            image_id=record.image_id,
            exit_code=record.exit_code,
            oom_killed=record.oom_killed,
            started_at=_time(record.started_at),
            finished_at=_time(record.finished_at),
            ip=record.ip,
            node=os.uname().nodename,
            ports=dict(record.ports) or None,
            limits=dict(record.limits),
            pid=record.pid,
        )

    def _find_sync(self, container_id: str) -> ProcessRecord | None:
        record = self.state.find(container_id)
        return self._refresh(record) if record is not None else None

    async def inspect(self, container_id: str) -> ContainerInfo | None:
        record = await self._run(self._find_sync, container_id)
        return self._info(record) if record is not None else None

    async def list(self, labels: dict[str, str] | None = None, all: bool = True) -> list[ContainerInfo]:
        everything = all
        wanted = full_labels(labels)
        wanted[key(MANAGED)] = MANAGED_VALUE

        def matching():
            records = [self._refresh(r) for r in self.state.all() if _has_labels(r.labels, wanted)]
            return [r for r in records if everything or r.status == "running"]

        return [self._info(r) for r in await self._run(matching)]

    async def wait(self, container_id: str, timeout: float | None = None) -> ContainerInfo:
        return await self._poll_until(
            container_id, timeout, lambda info: not info.running, what="kernel process", interval=0.05
        )

    async def logs(self, container_id: str, tail: int | None = 50) -> str:
        def read():
            record = self.state.find(container_id)
            if record is None:
                return ""
            try:
                with open(os.path.join(record.workdir, "output.log"), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                return ""
            return "".join(text.splitlines(keepends=True)[-tail:]) if tail else text

        return await self._run(read)

    # -- signals and stop --------------------------------------------------------------------------------

    def _signal_sync(self, container_id: str, signum: int) -> bool:
        record = self._find_sync(container_id)
        if record is None or record.status != "running":
            return False
        try:
            os.killpg(record.pid, signum)  # the kernel leads its own session and process group
        except ProcessLookupError:
            return False
        return True

    async def signal(self, container_id: str, signum: int) -> bool:
        return await self._run(self._signal_sync, container_id, int(signum))

    def _stop_sync(self, container_id: str, timeout: float) -> None:
        record = self._find_sync(container_id)
        if record is None or record.status != "running":
            return
        adopted = record.pid not in _CHILDREN
        if timeout > 0 and self._signal_sync(record.id, signal.SIGTERM):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._find_sync(record.id).status == "running":
                time.sleep(0.05)
        killed = self._signal_sync(record.id, signal.SIGKILL) or timeout <= 0
        if record.cgroup:  # what the kernel started outside its process group, too
            for pid in process_limits.cgroup_pids(record.cgroup):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._find_sync(record.id).status == "running":
            time.sleep(0.02)
        record = self.state.load(record.id)
        if adopted and record is not None and record.exit_code == UNKNOWN_EXIT:
            record.exit_code = 128 + (signal.SIGKILL if killed else signal.SIGTERM)  # we know how it ended
            self.state.save(record)

    async def stop(self, container_id: str, timeout: float = 5) -> None:
        await self._run(self._stop_sync, container_id, max(0.0, float(timeout)))

    def _remove_sync(self, container_id: str, force: bool) -> None:
        record = self._find_sync(container_id)
        if record is None:
            return
        if record.status == "running":
            if not force:
                raise ConflictError(f"kernel process {record.name} is running; stop it first")
            self._stop_sync(record.id, 0)
        process_limits.remove_cgroup(record.cgroup)
        shutil.rmtree(record.workdir, ignore_errors=True)
        self.state.delete(record.id)
        if record.ports:
            self._last_ports[record.name] = dict(record.ports)

    async def remove(self, container_id: str, force: bool = True) -> None:
        await self._run(self._remove_sync, container_id, force)

    # -- usage and limits -----------------------------------------------------------------------------

    def _usage_sync(self, container_id: str) -> dict | None:
        record = self._find_sync(container_id)
        if record is None or record.status != "running":
            return None
        if record.cgroup:
            return process_limits.cgroup_usage(record.cgroup)
        return process_limits.session_usage(record.pid)

    async def usage(self, container_id: str) -> ContainerUsage | None:
        sample = await self._run(self._usage_sync, container_id)
        return ContainerUsage(**sample) if sample else None

    def _update_sync(self, container_id: str, resources: Resources) -> None:
        record = self._find_sync(container_id)
        if record is None or record.status != "running":
            raise NotFoundError(f"kernel process {container_id} is not running; its limits cannot be changed")
        if record.cgroup:
            report = process_limits.update_limits(record.cgroup, resources)
        else:
            plan = process_limits.rlimit_plan(resources, self._as_allowance, record.limits.get("why", ""))
            try:
                for name, value in plan.rlimits.items():
                    resource.prlimit(record.pid, getattr(resource, name), (value, value))
            except (OSError, ValueError) as e:
                raise EngineError(
                    f"could not change the rlimits of {record.name}: {e} (raising a hard limit needs root)"
                ) from e
            report = plan.report
        record.limits = {"mechanism": record.limits.get("mechanism"), **report}
        self.state.save(record)

    async def update_resources(self, container_id: str, resources: Resources) -> None:
        await self._run(self._update_sync, container_id, resources)

    # -- networks: none ------------------------------------------------------------------------------

    async def ensure_network(
        self, name: str, labels: dict[str, str] | None = None, subnets: list[str] | None = None
    ) -> str:
        """No networks: process kernels listen on the host's loopback."""
        return name

    async def remove_network(self, name: str) -> None:
        return None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


__all__ = ["ProcessInfo", "ProcessRuntime"]
