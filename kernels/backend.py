"""How a provisioner reaches the Berth service: embedded (standalone) or remote (hub mode).

Both offer the same five coroutines, so the provisioner never knows which it has:
``start_kernel``, ``kernel_state``, ``signal_kernel``, ``stop_kernel``, ``kernel_ended``.
Standalone (a researcher's own JupyterLab) embeds one :class:`BerthService` per
process, started lazily on first use; hub mode calls the hub's Berth service
over HTTP with the user's token (see ``jupyter_berth.hub``).
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import os

from traitlets.config import Application, Config

from jupyter_berth import server_scope
from jupyter_berth.config_files import load_berth_config
from jupyter_berth.kernel_launch import FOLDERS_ROOT
from jupyter_berth.service import BerthService, standalone_user

_service: BerthService | None = None
_lock: asyncio.Lock | None = None


class EmbeddedBackend:
    """Calls an in-process :class:`BerthService` as the local user."""

    def __init__(self, service: BerthService, user: str, groups=()):
        self.service = service
        self.user = user
        self.groups = tuple(groups)

    async def start_kernel(self, **kw):
        return await self.service.start_kernel(self.user, self.groups, **kw)

    async def kernel_state(self, kernel_id):
        return await self.service.kernel_state(self.user, kernel_id)

    async def signal_kernel(self, kernel_id, signum):
        return await self.service.signal_kernel(self.user, kernel_id, signum)

    async def stop_kernel(self, kernel_id, reason="shutdown", now=False):
        return await self.service.stop_kernel(self.user, kernel_id, reason, now=now)

    async def kernel_ended(self, kernel_id):
        return await self.service.kernel_ended(self.user, kernel_id)


def standalone_pool_config(config, parent):
    """Standalone: the embedded service's configuration. Without a server (a plain KernelManager, as
    nbclient uses it), the deployment's Berth config files are read here (the given config wins). The warm
    pool waits on the one user's network, with a hand-over slot at the server's root directory (the
    directory every kernel mounts; a plain KernelManager's is its working directory)."""
    given = copy.deepcopy(config) if config is not None else Config()
    app = getattr(parent, "serverapp", None) or getattr(getattr(parent, "parent", None), "parent", None)
    if app is None:
        loader = Application()
        load_berth_config(loader)
        config = copy.deepcopy(loader.config)
        config.merge(given)
    else:  # the server's extension loaded them
        config = given
    pool = config.WarmPool
    if "user" not in pool:
        pool.user = standalone_user()[0]
    if "handover_targets" not in pool:
        root = getattr(app, "root_dir", None) or os.getcwd()
        pool.handover_targets = [os.path.abspath(os.path.expanduser(root)), FOLDERS_ROOT]
    return config


async def embedded_service(config=None, parent=None) -> BerthService:
    """The process-wide embedded service, started once (reconciles with the engine)."""
    global _service, _lock
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _service is None:
            service = BerthService(config=standalone_pool_config(config, parent), parent=parent)
            await service.start()
            _service = service
            if getattr(parent, "serverapp", None) is None and _server_of(parent) is None:
                atexit.register(_stop_at_exit, service)  # no server will stop it: drain its warm pool at exit
    return _service


def _server_of(parent):
    return getattr(getattr(parent, "parent", None), "parent", None)


def _stop_at_exit(service: BerthService) -> None:
    """A process without a server (nbclient, a plain KernelManager) ends without stopping its embedded
    service: its warm pool's containers must not outlive it (running kernels are left alone)."""
    if _service is not service:
        return
    try:  # (the loop may be closed and thread pools shut: blocking calls only)
        service.stop_at_exit()
    except Exception as e:  # noqa: BLE001 - at exit: the next service's reconcile removes what is left
        service.log.warning("Berth: the warm pool was not emptied at exit: %s", e)


async def shutdown_embedded_service() -> None:
    global _service
    if _service is not None:
        await _service.stop()
        _service = None


def hub_service_backend(**kw):
    """Hub mode: a :class:`~jupyter_berth.kernels.remote.RemoteBackend` of the hub's Berth service, else ``None``.

    Hub mode is ``BERTH_SERVICE_URL`` set in the environment (BerthSpawner sets it for every
    user server); the token is the server's own, ``JUPYTERHUB_API_TOKEN`` (owned by the user).
    The provisioner and the server extension both decide here, so they never disagree.
    """
    url = os.environ.get("BERTH_SERVICE_URL")
    if not url:
        return None
    from jupyter_berth.kernels.remote import RemoteBackend

    kw.setdefault("server", server_scope.from_env(os.environ))  # JUPYTERHUB_SERVER_NAME: whose kernels
    return RemoteBackend(url, token=os.environ.get("JUPYTERHUB_API_TOKEN", ""), **kw)


async def get_backend(config=None, parent=None):
    """The backend for this process: remote when ``BERTH_SERVICE_URL`` is set (hub mode)."""
    remote = hub_service_backend()
    if remote is not None:
        return remote
    user, groups = standalone_user()
    return EmbeddedBackend(await embedded_service(config=config, parent=parent), user, groups)
