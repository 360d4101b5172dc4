"""The wire format both ends of Berth's HTTP API share: errors, containers, launches, mounts.

The hub's Berth service answers with these JSON forms and :class:`~jupyter_berth.kernels.remote.RemoteBackend`
reads them back into the same objects the embedded service returns, so a front end cannot tell a
remote service from an embedded one. Framework-free: the HTTP client and the handlers import this.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from jupyter_berth import errors
from jupyter_berth.errors import BerthError
from jupyter_berth.resources import Resources
from jupyter_berth.runtime.base import ContainerInfo, Mount
from jupyter_berth.service import KernelLaunch

#: Error classes a service answer may name in its ``error`` field.
_ERROR_CLASSES = {
    cls.__name__: cls
    for cls in (
        errors.RequestError,
        errors.PolicyError,
        errors.CapacityError,
        errors.NotFoundError,
        errors.ConflictError,
        errors.EngineError,
        errors.BerthError,
    )
}
#: Extra attributes an error body may carry, per class.
_ERROR_FIELDS = {"RequestError": ("field",), "PolicyError": ("limit",), "CapacityError": ("resource", "never_fits")}
_STATUS_CLASSES = {
    400: errors.RequestError,
    403: errors.PolicyError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    503: errors.EngineError,
}


def error_to_json(exc: BerthError) -> dict:
    """The JSON body the service answers a :class:`BerthError` with."""
    body = exc.to_json()
    body["error"] = type(exc).__name__ if type(exc).__name__ in _ERROR_CLASSES else "BerthError"
    for name in _ERROR_FIELDS.get(body["error"], ()):
        body.setdefault(name, getattr(exc, name, None))
    return body


def error_from_json(status: int, body: Any) -> BerthError:
    """The :class:`BerthError` (subclass) an error answer stands for, keeping the service's message."""
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or f"the Berth service answered HTTP {status}")
    cls = _ERROR_CLASSES.get(body.get("error")) or _STATUS_CLASSES.get(status, BerthError)
    exc = cls.__new__(cls)
    BerthError.__init__(exc, message, status=status)  # keep the message as the service worded it
    for name in _ERROR_FIELDS.get(cls.__name__, ()):
        setattr(exc, name, body.get(name, False if name == "never_fits" else None))
    return exc


def container_to_json(info: ContainerInfo | None) -> dict | None:
    if info is None:
        return None
    data = asdict(info)
    for name in ("started_at", "finished_at"):
        data[name] = data[name].isoformat() if data[name] else None
    return data


def container_from_json(data: dict | None) -> ContainerInfo | None:
    if data is None:
        return None
    data = dict(data)
    for name in ("started_at", "finished_at"):
        data[name] = datetime.fromisoformat(data[name]) if data.get(name) else None
    return ContainerInfo(**data)


def launch_from_json(data: dict) -> KernelLaunch:
    """A :class:`KernelLaunch` from ``KernelLaunch.to_json()`` (the key back to bytes, as jupyter_client wants)."""
    conn = dict(data["connection"])
    conn["key"] = conn["key"].encode() if isinstance(conn["key"], str) else conn["key"]
    return KernelLaunch(
        kernel_id=data["kernel_id"],
        allocation_id=data["allocation_id"],
        container_id=data["container_id"],
        image=data["image"],
        image_digest=data.get("image_digest"),
        resources=Resources.from_dict(data["resources"]),
        connection=conn,
    )


def mount_to_json(mount: Mount | dict) -> dict:
    return asdict(mount) if isinstance(mount, Mount) else dict(mount)
