"""How jupyter-scheduler's classes reach Berth jobs: the embedded service, as the server's user.

jupyter-scheduler builds its environment manager and scheduler itself (no handle on this server's
Berth extension), so they ask here. Standalone, the process-wide embedded service (the one the
kernel provisioner and the REST API use) answers as the local user. Hub mode (``BERTH_SERVICE_URL``)
(``BERTH_SERVICE_URL``) answers :class:`~.remote.RemoteJobs`: the hub's service owns the job, the
notebook is sent with it and its output is downloaded into the scheduler's folder when it ends.
"""

from __future__ import annotations

from .remote import RemoteJobs


class EmbeddedJobs:
    """The facade's job and offer methods bound to one user."""

    def __init__(self, service, user: str, groups=()):
        self.service = service
        self.user = user
        self.groups = tuple(groups)

    async def submit(self, **request) -> dict:
        return (await self.service.jobs.submit(self.user, self.groups, **request)).to_json()

    async def get(self, job_id: str) -> dict:
        return (await self.service.jobs.get(self.user, job_id)).to_json()

    async def cancel(self, job_id: str) -> dict:
        return (await self.service.jobs.cancel(self.user, job_id)).to_json()

    async def wait(self, job_id: str, timeout: float | None = None) -> dict:
        return (await self.service.jobs.wait(self.user, job_id, timeout)).to_json()

    async def offer(self) -> dict:
        """What the user may run: ``{"images": [...], "presets": [...], "default_request": "..."}``."""
        return await self.service.jobs.offer(self.user, self.groups)


async def jobs_backend(config=None, parent=None) -> EmbeddedJobs | RemoteJobs:
    from jupyter_berth.kernels.backend import embedded_service, hub_service_backend
    from jupyter_berth.service import standalone_user

    remote = hub_service_backend()  # hub mode: the same client (token, server name, retries) as the kernels
    if remote is not None:
        return RemoteJobs(remote)
    user, groups = standalone_user()
    return EmbeddedJobs(await embedded_service(config=config, parent=parent), user, groups)
