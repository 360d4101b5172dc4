"""What every Berth handler reaches: the service (embedded, or the hub's) and the identity.

Standalone (a researcher's own JupyterLab), the server has one user: the operating-system
user it runs as (``BERTH_USER`` overrides), and the service is embedded in-process, started
on first use. In hub mode the same calls go to the hub's Berth service with the user's token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable


@dataclass
class BerthContext:
    get_service: Callable[[], Awaitable[Any]]  #: returns the BerthService (embedded) or a remote client
    user: str
    groups: tuple[str, ...] = ()
    kernel_manager: Any = None  #: jupyter_server's MappingKernelManager
    extra: dict = field(default_factory=dict)

    async def service(self):
        return await self.get_service()
