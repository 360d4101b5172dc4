"""Named servers: which of a user's hub servers a kernel belongs to.

A JupyterHub user may run several servers (``/user/alice/`` and ``/user/alice/gpu/``). Each
kernel belongs to the server that started it: the server's provisioner and its forwarded
sidebar calls tell the hub's Berth service their server's name (``JUPYTERHUB_SERVER_NAME``,
"" for the default server) in the :data:`HEADER` header; the service records it on the
kernel's allocation (the ``server`` column) and labels the container. A server's sidebar
lists its own kernels, a stopped server's kernels are stopped with it (``stop_orphan_kernels``),
and the user's totals and usage still count every kernel of every server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .errors import RequestError

#: The request header that names the caller's hub server (a JSON string: ``""`` is the default server).
HEADER = "X-Berth-Server"
#: What JupyterHub sets in a server's environment.
ENV = "JUPYTERHUB_SERVER_NAME"
MAX_LEN = 255


def from_env(env: Mapping[str, str]) -> str | None:
    """The server's name from its environment; ``None`` outside a hub server."""
    return env[ENV] if ENV in env else None


def to_headers(server: str | None) -> dict[str, str]:
    """The header naming ``server`` (none when ``None``)."""
    return {} if server is None else {HEADER: json.dumps(server)}


def from_header(value: str | None) -> str | None:
    """The server named by a request's :data:`HEADER` (``None`` when absent); a malformed one is refused."""
    if value is None:
        return None
    try:
        server = json.loads(value)
    except ValueError:
        server = None
    if not isinstance(server, str) or len(server) > MAX_LEN:
        raise RequestError(HEADER, 'expected a JSON string naming the hub server, such as "" or "gpu"')
    return server


def belongs(alloc, server: str | None) -> bool:
    """Whether ``alloc`` is a kernel of ``server`` (every kernel when ``server`` is ``None``; the default
    server also has the kernels recorded before servers were told apart)."""
    if server is None:
        return True
    return alloc.server == server or (server == "" and alloc.server is None)


__all__ = ["ENV", "HEADER", "belongs", "from_env", "from_header", "to_headers"]
