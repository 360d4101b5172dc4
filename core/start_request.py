"""One kernel start request, from the sidebar to the engine: :class:`StartRequest`.

A start travels through four hands, and each used to parse it in its own shape:

1. the server extension's ``POST berth/api/kernels`` (the sidebar's body:
   :meth:`StartRequest.from_sidebar_json`) puts the parameterized part into the kernel
   manager's start environment (:meth:`StartRequest.to_env`: ``BERTH_REQUEST`` and friends,
   the way Enterprise Gateway passes ``KERNEL_*``);
2. the provisioner reads it back (:meth:`StartRequest.from_env`) and adds the kernel's id,
   directory, mounts, environment (:func:`kernel_env`) and session key;
3. standalone, the embedded service gets it as keyword arguments (:meth:`StartRequest.kwargs`);
   in hub mode the remote backend sends it as JSON (:meth:`StartRequest.to_json`);
4. the hub's Berth service reads that JSON (:meth:`StartRequest.from_json`), binds the mounts
   to the caller's own volume, and calls :meth:`BerthService.start_kernel`.

Every refusal is a :class:`RequestError` naming the field and the accepted form. The policy is
checked once, by admission, when the service reserves (``EffectivePolicy.check``).
"""

from __future__ import annotations

import ipaddress
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import RequestError
from .images.catalog import validate_ref
from .resources import Resources
from .runtime.base import Mount
from .runtime.extra_config import CREATE_ALLOWED, HOST_CONFIG_ALLOWED, check_extra, isolation_breakers
from .runtime.site_scope import site_tag

KERNEL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
#: The start environment's variables that carry a parameterized start (StartRequest field → variable).
REQUEST_ENV = {"request": "BERTH_REQUEST", "preset": "BERTH_PRESET", "image": "BERTH_IMAGE", "folders": "BERTH_FOLDERS"}
#: Environment variables a kernel may receive from its server (prefixes), and those it never does.
ENV_PREFIXES = ("JPY_", "JUPYTER_", "KERNEL_", "CLICOLOR", "MPLBACKEND", "PYDEVD_", "BERTH_NOTICE")
ENV_DENIED = frozenset(
    {
        "JPY_API_TOKEN",
        "JUPYTER_TOKEN",
        "JUPYTERHUB_API_TOKEN",
        "JUPYTER_CONFIG_DIR",
        "JUPYTER_DATA_DIR",
        "JUPYTER_RUNTIME_DIR",
        "JUPYTER_PATH",
    }
)
_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_ENV = 64
MAX_ENV_VALUE = 8192
MAX_FOLDERS = 64
#: The fields of the sidebar's start body (``resources`` there is the explicit request).
SIDEBAR_FIELDS = ("image", "resources", "folders", "preset", "path", "kernel")
#: Fields the server extension resolves itself (into the kernelspec it starts), never sent on.
LOCAL_FIELDS = frozenset({"kernel"})


def kernel_env(env: Mapping[str, Any]) -> dict[str, str]:
    """The variables of ``env`` a kernel container may receive: the one allowlist.

    Jupyter's own (``JPY_``, ``JUPYTER_``), ``KERNEL_*``, a few display settings and
    ``BERTH_NOTICE``; never a token, Jupyter's directories, the host's paths or Berth's
    start parameters. Anything else is dropped silently (a server's environment is not a request).
    """
    return {
        name: value
        for name, value in env.items()
        if isinstance(name, str)
        and name.startswith(ENV_PREFIXES)
        and name not in ENV_DENIED
        and _ENV_NAME_RE.fullmatch(name)
        and isinstance(value, str)
    }


def _str(body: Mapping, name: str, *, max_len: int = 255) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_len or "\x00" in value:
        raise RequestError(name, f"expected a non-empty string of at most {max_len} characters")
    return value


def _preset(body: Mapping) -> str | None:
    value = body.get("preset")
    if value is not None and (not isinstance(value, str) or not value or len(value) > 63):
        raise RequestError("preset", "expected a preset name (at most 63 characters)")
    return value


def _request(value: Any, name: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RequestError(name, 'expected an object such as {"cpu": 2, "mem": "4G", "gpu": 0.25}')
    Resources.parse(value)  # 400 naming the resource, before anything is reserved
    return dict(value) or None


def _folders(value: Any, name: str = "folders") -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(f, str) and f for f in value) or len(value) > MAX_FOLDERS:
        raise RequestError(name, f"expected a list of at most {MAX_FOLDERS} folder names")
    return list(value) or None


def _mounts(value: Any) -> list[Mount]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RequestError("mounts", 'expected a list of {"source", "target"} objects')
    out = []
    for i, m in enumerate(value):
        target = m.get("target") if isinstance(m, dict) else None
        if not isinstance(target, str) or not target.startswith("/"):
            raise RequestError(f"mounts[{i}].target", "expected an absolute path inside the kernel")
        source = m.get("source")
        out.append(
            Mount(
                source=source if isinstance(source, str) else "",
                target=posixpath.normpath(target),
                read_only=bool(m.get("read_only", False)),
            )
        )
    return out


def _env(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError("env", "expected an object of NAME: value strings")
    if len(value) > MAX_ENV * 4:
        raise RequestError("env", f"{len(value)} variables is too many; send at most {MAX_ENV}")
    for name, v in value.items():
        if not isinstance(v, str) or len(v) > MAX_ENV_VALUE or "\x00" in v:
            raise RequestError(f"env.{name}", f"expected a string of at most {MAX_ENV_VALUE} characters")
    out = kernel_env(value)
    if len(out) > MAX_ENV:
        raise RequestError("env", f"{len(out)} variables is too many; send at most {MAX_ENV}")
    return out


@dataclass
class StartRequest:
    """A kernel start: what is asked for (``request``/``preset``/``image``/``folders``) and where it runs.

    ``resources`` (with ``image``) is a kept grant instead of a request: a restart keeps it, and
    ``ip`` asks for the address the kernel had; ``key`` is the session's signing key.
    """

    kernel_id: str | None = None
    request: dict | None = None
    preset: str | None = None
    image: str | None = None
    folders: list[str] | None = None
    cwd: str | None = None
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ip: str | None = None
    key: str | None = None
    resources: Resources | None = None
    #: The kernel inside the image (its kernelspec's name there: ``python3``, ``ir``, ``bash``). The
    #: server extension turns it into the kernelspec it starts, which carries it to the service.
    kernel: str | None = None

    # ---- the service's JSON (remote backend → hub service) -----------------------------------
    @classmethod
    def from_json(cls, body: Any) -> StartRequest:
        """The body of the hub service's ``POST api/kernels`` (see docs/hub-service.md), validated."""
        if not isinstance(body, dict):
            raise RequestError("body", 'expected a JSON object such as {"kernel_id": "…", "request": {"cpu": 1}}')
        known = [f.name for f in fields(cls) if f.name not in LOCAL_FIELDS]
        unknown = sorted(set(body) - set(known))
        if unknown:
            raise RequestError(unknown[0], f"unknown field; known fields are {', '.join(sorted(known))}")
        kernel_id = body.get("kernel_id")
        if not isinstance(kernel_id, str) or not KERNEL_ID_RE.match(kernel_id):
            raise RequestError(
                "kernel_id", "expected the kernel's id: letters, digits, '.', '_' or '-', at most 80 (a UUID)"
            )
        if body.get("request") and body.get("resources"):
            raise RequestError(
                "resources", "give either request (to be resolved) or resources (a kept grant), not both"
            )
        start = cls(kernel_id=kernel_id, request=_request(body.get("request"), "request"))
        start.preset = _preset(body)
        start.image = validate_ref(body["image"]) if body.get("image") is not None else None
        grant = body.get("resources")
        if grant is not None and not isinstance(grant, dict):
            raise RequestError("resources", 'expected an object such as {"cpu": 1, "mem": "2G"}')
        if grant:
            if start.image is None:
                raise RequestError("image", "required together with resources (a restart keeps its image)")
            start.resources = Resources.parse(grant)
        cwd = _str(body, "cwd", max_len=4096)
        if cwd is not None:
            if not cwd.startswith("/"):
                raise RequestError("cwd", f"{cwd!r} is not an absolute path")
            start.cwd = posixpath.normpath(cwd)
        start.mounts = _mounts(body.get("mounts"))
        start.env = _env(body.get("env"))
        ip = _str(body, "ip", max_len=45)
        if ip is not None:
            try:
                start.ip = str(ipaddress.ip_address(ip))
            except ValueError:
                raise RequestError("ip", f"{ip!r} is not an IP address") from None
        start.key = _str(body, "key", max_len=512)
        start.folders = _folders(body.get("folders"))
        return start

    def to_json(self) -> dict:
        """The JSON :meth:`from_json` reads (fields that are not set are left out)."""
        body = {
            "kernel_id": self.kernel_id,
            "request": self.request,
            "preset": self.preset,
            "image": self.image,
            "cwd": self.cwd,
            "mounts": [asdict(m) if isinstance(m, Mount) else dict(m) for m in self.mounts],
            "env": dict(self.env),
            "ip": self.ip,
            "key": self.key,
            "folders": self.folders,
            "resources": self.resources.to_dict() if self.resources is not None else None,
        }
        return {k: v for k, v in body.items() if v is not None}

    def kwargs(self) -> dict:
        """Keyword arguments of ``BerthService.start_kernel`` (without the identity); unset ones left out."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in LOCAL_FIELDS}
        return {name: value for name, value in values.items() if value is not None}

    # ---- the sidebar's JSON (server extension) ------------------------------------------------
    @classmethod
    def from_sidebar_json(cls, body: Any) -> tuple[StartRequest, str]:
        """The sidebar's ``POST berth/api/kernels`` body → the request and the notebook's path in the server."""
        if not isinstance(body, dict):
            raise RequestError("body", 'expected a JSON object such as {"image": "…", "resources": {"cpu": 1}}')
        unknown = set(body) - set(SIDEBAR_FIELDS)
        if unknown:
            raise RequestError(
                sorted(unknown)[0], f"unknown field; a start request has {', '.join(sorted(SIDEBAR_FIELDS))}"
            )
        start = cls(
            request=_request(body.get("resources"), "resources"),
            preset=_preset(body),
            image=validate_ref(body["image"]) if body.get("image") is not None else None,
            folders=_folders(body.get("folders")),
        )
        kernel = body.get("kernel")
        if kernel is not None and (not isinstance(kernel, str) or not kernel or len(kernel) > 255):
            raise RequestError("kernel", "expected the name of a kernel inside the image, such as 'ir' or 'python3'")
        start.kernel = kernel
        path = body.get("path", "")
        if not isinstance(path, str) or "\x00" in path or any(part == ".." for part in path.split("/")):
            raise RequestError("path", "expected a path inside the server's root such as 'project/analysis.ipynb'")
        return start, path

    # ---- the kernel manager's start environment (server extension → provisioner) -------------
    def to_env(self) -> dict[str, str]:
        """The start environment's ``BERTH_*`` variables for the parameterized part of the request."""
        env = {}
        if self.request is not None:
            env[REQUEST_ENV["request"]] = json.dumps(self.request)
        if self.preset is not None:
            env[REQUEST_ENV["preset"]] = self.preset
        if self.image is not None:
            env[REQUEST_ENV["image"]] = self.image
        if self.folders is not None:
            env[REQUEST_ENV["folders"]] = json.dumps(self.folders)
        return env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StartRequest:
        """What a start environment asks for (``BERTH_REQUEST`` …); a malformed one names its variable."""
        request = folders = None
        if env.get(REQUEST_ENV["request"]):
            request = _request(_json(env, REQUEST_ENV["request"]), REQUEST_ENV["request"])
        if env.get(REQUEST_ENV["folders"]):
            folders = _folders(_json(env, REQUEST_ENV["folders"]), REQUEST_ENV["folders"])
        image = env.get(REQUEST_ENV["image"]) or None
        return cls(
            request=request,
            preset=env.get(REQUEST_ENV["preset"]) or None,
            image=validate_ref(image, REQUEST_ENV["image"]) if image else None,
            folders=folders,
        )


def _json(env: Mapping[str, str], name: str) -> Any:
    try:
        return json.loads(env[name])
    except ValueError as e:
        raise RequestError(name, f"not valid JSON ({e})") from None


#: ``Mount``, ``site_tag`` and the rules for an admin's extra engine options (``check_extra``…) are
#: re-exported for the front ends, which build requests and names from them.
__all__ = [
    "CREATE_ALLOWED",
    "HOST_CONFIG_ALLOWED",
    "ENV_DENIED",
    "ENV_PREFIXES",
    "KERNEL_ID_RE",
    "REQUEST_ENV",
    "Mount",
    "StartRequest",
    "check_extra",
    "isolation_breakers",
    "kernel_env",
    "site_tag",
]
