"""A kernel start request as the hub's Berth service accepts it: checked, filtered, bound to the caller.

:func:`parse_start` reads the JSON body of ``POST api/kernels``
(:meth:`jupyter_berth.start_request.StartRequest.from_json`: every field typed and bounded, a
wrong one a 400 naming the field; environment variables through the one allowlist,
:func:`~jupyter_berth.start_request.kernel_env`) and binds what the hub decides itself:

* **mounts are never taken from the body.** In hub mode the user's files live in the
  named volume of the user's server (DockerSpawner's ``jupyterhub-user-{username}`` at
  ``/home/jovyan/work``); the kernel gets *that* volume, chosen from the authenticated
  name, at the same path. A body may list mounts (the provisioner asks for the server's
  root directory); each must be the work directory, inside it, or the directory that
  holds it — anything else is refused (403, ``limit: "mounts"``).

It is pure (no I/O), so every rule is tested without a hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from escapism import escape

from jupyter_berth.errors import PolicyError
from jupyter_berth.start_request import KERNEL_ID_RE, Mount, StartRequest, site_tag

#: DockerSpawner's escaping of user names in volume names (``{username}``).
_SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


def volume_name(template: str, user: str, site: str = "") -> str:
    """The user's server volume: ``{username}`` escaped as DockerSpawner does, ``{raw_username}`` as is,
    ``{site}`` the site as it appears in names."""
    return template.format(
        username=escape(user, _SAFE_CHARS, escape_char="-").lower(), raw_username=user, site=site_tag(site)
    )


@dataclass(frozen=True)
class UserVolume:
    """Where the user's files are: a named volume (from the identity) and where it is mounted."""

    source: str
    target: str


def bind_mounts(mounts: list[Mount], volume: UserVolume | None) -> list[Mount]:
    """The caller's own volume in place of the mounts a body asks for (each inside its work directory)."""
    for i, m in enumerate(mounts):
        if volume is None:
            raise PolicyError(
                f"mounts[{i}]: this hub mounts no user directory into kernels (user_volume is empty); "
                "ask without mounts",
                limit="mounts",
            )
        inside = m.target == volume.target or m.target.startswith(volume.target.rstrip("/") + "/")
        holds = volume.target.startswith(m.target.rstrip("/") + "/")
        if not (inside or holds):
            raise PolicyError(
                f"mounts[{i}]: only your own server's work directory ({volume.target}) can be mounted "
                f"into a kernel; {m.target} is outside it",
                limit="mounts",
            )
    return [Mount(source=volume.source, target=volume.target)] if volume is not None else []


def parse_start(body: Any, volume: UserVolume | None) -> dict:
    """Keyword arguments for ``BerthService.start_kernel`` (without the identity).

    ``volume`` is the caller's own volume (from the authenticated name), or ``None``
    when the hub mounts none.
    """
    start = StartRequest.from_json(body)
    start.mounts = bind_mounts(start.mounts, volume)
    return start.kwargs()


__all__ = ["UserVolume", "parse_start", "volume_name", "KERNEL_ID_RE"]
