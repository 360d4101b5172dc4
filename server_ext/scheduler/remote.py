"""``RemoteJobs``: jupyter-scheduler's jobs in hub mode, owned by the hub's Berth service.

The same coroutines as :class:`~.backend.EmbeddedJobs` (``submit``, ``get``, ``cancel``, ``wait``,
``offer``), over the service's REST API (``berth/api/jobs``, docs/jobs.md "Hub mode") with the
server's own token and server name: the HTTP, authentication, error and retry rules are
:class:`~jupyter_berth.kernels.remote.RemoteBackend`'s, the one client of the hub's service.

The notebook travels in the request (the service does not reach the user's volume), and the job
keeps the scheduler's job id. When the job has ended, :meth:`RemoteJobs.download` writes what the
service kept (``output.ipynb`` and ``job.log``) into the folder the scheduler expects in the user's
server, and answers the job with that folder as its ``job_dir``, as a standalone job would be.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

from jupyter_berth.errors import NotFoundError, RequestError

#: Berth job states that may still change.
ACTIVE = ("queued", "running")


class RemoteJobs:
    """The user's jobs at the hub's Berth service (``remote``: the server's ``RemoteBackend``)."""

    def __init__(self, remote, *, poll_seconds: float = 1.0):
        self.remote = remote
        self.poll_seconds = poll_seconds

    @staticmethod
    def _path(job_id: str, *rest: str) -> str:
        return "/".join(["berth/api/jobs", job_id, *rest])

    async def submit(self, *, notebook: str, output_dir: str | None = None, **request) -> dict:
        """Send the notebook at ``notebook`` (read here) with ``request``; ``output_dir`` stays on this side."""
        try:
            with open(notebook, encoding="utf-8") as f:
                content = json.load(f)
        except (OSError, ValueError) as e:
            raise RequestError("notebook", f"{notebook} could not be read as a notebook: {e}") from None
        body = {k: v for k, v in request.items() if v is not None}
        if isinstance(body.get("time_limit"), str):  # the dialog's parameters are text
            try:
                body["time_limit"] = float(body["time_limit"])
            except ValueError:
                raise RequestError("time_limit", f"{body['time_limit']!r} is not a number of seconds") from None
        body.update(notebook=os.path.basename(notebook), content=content)
        return await self.remote.call("POST", "berth/api/jobs", body)

    async def get(self, job_id: str) -> dict:
        return await self.remote.call("GET", self._path(job_id))

    async def cancel(self, job_id: str) -> dict:
        return await self.remote.call("DELETE", self._path(job_id))

    async def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """The job once it has ended, asked every ``poll_seconds`` (``TimeoutError`` after ``timeout``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job["status"] not in ACTIVE:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise asyncio.TimeoutError(f"job {job_id} is still {job['status']} after {timeout} s")
            await asyncio.sleep(self.poll_seconds)

    async def download(self, job: dict, local_dir: str) -> dict:
        """Write an ended job's output notebook and log into ``local_dir``; ``job`` with that ``job_dir``.

        A job that failed before its first cell has no output notebook: only its log is written.
        """
        os.makedirs(local_dir, exist_ok=True)
        try:
            output = await self.remote.call("GET", self._path(job["id"], "output"))
        except NotFoundError:
            output = None
        log, offset = [], 0
        while True:
            part = await self.remote.call("GET", self._path(job["id"], "log"), query={"offset": offset})
            if not part["text"] or part["offset"] <= offset:
                break
            log.append(part["text"])
            offset = part["offset"]

        def write() -> None:
            if output is not None:
                with open(os.path.join(local_dir, "output.ipynb"), "w", encoding="utf-8") as f:
                    json.dump(output, f, indent=1)
            with open(os.path.join(local_dir, "job.log"), "w", encoding="utf-8") as f:
                f.write("".join(log))

        await asyncio.to_thread(write)
        return {**job, "job_dir": local_dir}

    async def offer(self) -> dict:
        """What the service offers the user: the images their policy allows, the presets that fit it and
        the policy's default request (the service's own rule, ``berth/api/job-environments``)."""
        return await self.remote.call("GET", "berth/api/job-environments", retry=False)
