"""A kernel start request as the hub's Berth service accepts it: checked, filtered, bound to the caller.

:func:`parse_start` turns the JSON body of ``POST api/kernels`` into keyword arguments
for :meth:`BerthService.start_kernel`. It is pure (no I/O) so every rule is tested
without a hub. What it enforces:

* every field has the expected type; a wrong one is a 400 naming the field;
* **mounts are never taken from the body.** In hub mode the user's files live in the
  named volume of the user's server (DockerSpawner's ``jupyterhub-user-{username}`` at
  ``/home/jovyan/work``); the kernel gets *that* volume, chosen from the authenticated
  name, at the same path. A body may list mounts (the provisioner asks for the server's
  root directory); each must be the work directory, inside it, or the directory that
  holds it — anything else is refused (403, ``limit: "mounts"``);
* environment variables pass through an allowlist (Jupyter's own, ``KERNEL_*``, a few
  display settings, ``BERTH_NOTICE``); tokens and Berth's internal variables never do;
* the kernel id, session key and requested address are bounded strings.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass
from typing import Any

from escapism import escape

from jupyter_berth.errors import PolicyError, RequestError
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import Mount
from jupyter_berth.runtime.site_scope import site_tag

KERNEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
#: Environment variables a kernel may receive from its server (prefixes), and those it never does.
ENV_PREFIXES = ("JPY_", "JUPYTER_", "KERNEL_", "CLICOLOR", "MPLBACKEND", "PYDEVD_", "BERTH_NOTICE")
ENV_DENIED = {
    "JPY_API_TOKEN",
    "JUPYTER_TOKEN",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_PATH",
}
MAX_ENV = 64
MAX_ENV_VALUE = 8192
_KNOWN = {"kernel_id", "request", "preset", "image", "cwd", "mounts", "env", "ip", "key", "folders", "resources"}
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


def _str(body: dict, name: str, *, max_len: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or "\x00" in value:
        raise RequestError(name, f"expected a non-empty string of at most {max_len} characters")
    return value


def _mounts(value: Any, volume: UserVolume | None) -> list[Mount]:
    if value is None:
        value = []
    if not isinstance(value, list):
        raise RequestError("mounts", 'expected a list of {"source", "target"} objects')
    for i, m in enumerate(value):
        target = m.get("target") if isinstance(m, dict) else None
        if not isinstance(target, str) or not target.startswith("/"):
            raise RequestError(f"mounts[{i}].target", "expected an absolute path inside the kernel")
        target = posixpath.normpath(target)
        if volume is None:
            raise PolicyError(
                f"mounts[{i}]: this hub mounts no user directory into kernels (user_volume is empty); "
                "ask without mounts",
                limit="mounts",
            )
        inside = target == volume.target or target.startswith(volume.target.rstrip("/") + "/")
        holds = volume.target.startswith(target.rstrip("/") + "/")
        if not (inside or holds):
            raise PolicyError(
                f"mounts[{i}]: only your own server's work directory ({volume.target}) can be mounted "
                f"into a kernel; {target} is outside it",
                limit="mounts",
            )
    return [Mount(source=volume.source, target=volume.target)] if volume is not None else []


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError("env", "expected an object of NAME: value strings")
    if len(value) > MAX_ENV * 4:
        raise RequestError("env", f"{len(value)} variables is too many; send at most {MAX_ENV}")
    out = {}
    for name, v in value.items():
        if not isinstance(v, str) or len(v) > MAX_ENV_VALUE or "\x00" in v:
            raise RequestError(f"env.{name}", f"expected a string of at most {MAX_ENV_VALUE} characters")
        if name.startswith(ENV_PREFIXES) and name not in ENV_DENIED and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            out[name] = v
    if len(out) > MAX_ENV:
        raise RequestError("env", f"{len(out)} variables is too many; send at most {MAX_ENV}")
    return out


def parse_start(body: Any, volume: UserVolume | None) -> dict:
    """Keyword arguments for ``BerthService.start_kernel`` (without the identity).

    ``volume`` is the caller's own volume (from the authenticated name), or ``None``
    when the hub mounts none.
    """
    if not isinstance(body, dict):
        raise RequestError("body", 'expected a JSON object such as {"kernel_id": "…", "request": {"cpu": 1}}')
    unknown = sorted(set(body) - _KNOWN)
    if unknown:
        raise RequestError(unknown[0], f"unknown field; known fields are {', '.join(sorted(_KNOWN))}")
    kernel_id = body.get("kernel_id")
    if not isinstance(kernel_id, str) or not KERNEL_ID_RE.match(kernel_id):
        raise RequestError(
            "kernel_id", "expected the kernel's id: letters, digits, '.', '_' or '-', at most 80 (a UUID)"
        )
    kw: dict[str, Any] = {"kernel_id": kernel_id}
    for name in ("request", "resources"):
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise RequestError(name, 'expected an object such as {"cpu": 1, "mem": "2G"}')
    if body.get("request") and body.get("resources"):
        raise RequestError("resources", "give either request (to be resolved) or resources (a kept grant), not both")
    kw["request"] = body.get("request") or None
    kw["preset"] = _str(body, "preset", max_len=63)
    kw["image"] = _str(body, "image")
    if body.get("resources"):
        if kw["image"] is None:
            raise RequestError("image", "required together with resources (a restart keeps its image)")
        kw["resources"] = Resources.parse(body["resources"])
    cwd = _str(body, "cwd", max_len=4096)
    if cwd is not None:
        if not cwd.startswith("/"):
            raise RequestError("cwd", f"{cwd!r} is not an absolute path")
        kw["cwd"] = posixpath.normpath(cwd)
    kw["mounts"] = _mounts(body.get("mounts"), volume)
    kw["env"] = _env(body.get("env"))
    ip = _str(body, "ip", max_len=45)
    if ip is not None:
        try:
            kw["ip"] = str(ipaddress.ip_address(ip))
        except ValueError:
            raise RequestError("ip", f"{ip!r} is not an IP address") from None
    kw["key"] = _str(body, "key", max_len=512)
    folders = body.get("folders")
    if folders is not None:
        if not isinstance(folders, list) or not all(isinstance(f, str) and f for f in folders) or len(folders) > 64:
            raise RequestError("folders", "expected a list of folder names")
        kw["folders"] = list(folders) or None
    return {k: v for k, v in kw.items() if v is not None}


__all__ = ["UserVolume", "parse_start", "volume_name", "KERNEL_ID_RE"]
