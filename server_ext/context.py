"""What every Berth handler reaches: the service and the identity of the caller.

Standalone (a researcher's own JupyterLab), the server has one user: the operating-system
user it runs as (``BERTH_USER`` overrides), and the service is embedded in-process, started
on first use. In hub mode the user's server forwards the API to the hub's Berth service
(``remote``, see ``jupyter_berth.server.forwarding``); there the same handlers run with a
context made per request from the caller's hub token (``jupyter_berth.hub.service_user_api``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BerthContext:
    get_service: Callable[[], Awaitable[Any]]  #: returns the BerthService
    user: str
    groups: tuple[str, ...] = ()
    kernel_manager: Any = None  #: jupyter_server's MappingKernelManager (None in the hub's service)
    extra: dict = field(default_factory=dict)  #: "admin", "hub", "sync_kernelspecs"
    #: Hub mode, in the user's server: the :class:`~jupyter_berth.kernels.remote.RemoteBackend` of the hub's service.
    remote: Any = None

    async def service(self):
        return await self.get_service()
