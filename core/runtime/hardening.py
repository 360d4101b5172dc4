"""Turn a :class:`ContainerSpec` into Docker create arguments, with isolation always on.

Every berth container (design decision 4) runs as a numeric non-root user,
with ``no-new-privileges``, all capabilities dropped, a pids limit, memory
equal to memory+swap (no swap), a CFS CPU quota, a private IPC namespace and
never privileged. A spec that asks for root, or mounts the Docker socket (or a
folder holding it), is refused here, before the engine sees it.

These functions are pure (no engine calls), so they are tested without Docker.
"""

from __future__ import annotations

import os
import re

import docker.types

from ..errors import RequestError
from ..resources import resource_kinds
from .base import ContainerSpec, Mount
from .extra_config import merge_create, merge_host_config
from .labels import IMAGE_REF, MANAGED, MANAGED_VALUE, key

_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_USER_RE = re.compile(r"^(\d+)(?::(\d+))?$")
_DEFAULT_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def validate_name(name: str, field: str = "name") -> str:
    """Docker container and network names: letters, digits, ``_ . -`` (first a letter or digit)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise RequestError(
            field,
            f"{name!r} is not a valid name; use letters, digits, '_', '.' or '-', starting with a letter or digit (at most 128)",
        )
    return name


def validate_user(user: str) -> str:
    """A numeric ``uid[:gid]`` that is not root (names could resolve to root inside the image)."""
    m = _USER_RE.match(str(user or "").strip())
    if not m:
        raise RequestError(
            "user",
            f"{user!r} is not a numeric user; give uid:gid such as 1000:1000 (names are resolved inside the image and could be root)",
        )
    uid, gid = int(m.group(1)), m.group(2)
    if uid == 0 or (gid is not None and int(gid) == 0):
        raise RequestError(
            "user",
            f"{user!r} would run the container as root; berth containers always run as a non-root user such as 1000:1000",
        )
    return m.group(0)


def docker_socket_paths() -> set[str]:
    """Real paths of the engine's socket (the defaults and ``DOCKER_HOST`` when it is a unix socket)."""
    paths = set(_DEFAULT_SOCKETS)
    host = os.environ.get("DOCKER_HOST", "")
    if host.startswith("unix://"):
        paths.add(host[len("unix://") :])
    return {os.path.realpath(p) for p in paths} | paths


def validate_mount(mount: Mount) -> Mount:
    """Refuse relative targets, and any source that is or contains the Docker socket."""
    if not mount.target.startswith("/"):
        raise RequestError("mounts", f"mount target {mount.target!r} must be an absolute path inside the container")
    if mount.source.startswith("/"):
        source = os.path.realpath(mount.source)
        for sock in docker_socket_paths():
            if sock == source or sock.startswith(source.rstrip("/") + "/") or source == "/":
                raise RequestError(
                    "mounts",
                    f"mounting {mount.source!r} would give the container the Docker socket ({sock}), which is root on the "
                    "host; berth never mounts it into a kernel or server. Mount a folder that does not contain it.",
                )
    else:
        validate_name(mount.source, "mounts")
    return mount


def docker_mount(mount: Mount) -> docker.types.Mount:
    """A host path (absolute source) becomes a bind mount, anything else a named volume."""
    kind = "bind" if mount.source.startswith("/") else "volume"
    propagation = mount.propagation if kind == "bind" else None
    return docker.types.Mount(
        target=mount.target, source=mount.source, type=kind, read_only=mount.read_only, propagation=propagation
    )


def host_config_kwargs(spec: ContainerSpec, features: frozenset[str] | set[str] = frozenset()) -> dict:
    """Keyword arguments for docker-py's ``create_host_config`` (hardening included).

    ``features``: what the engine supports of the kinds' ``engine_feature`` (``disk_quota``); a kind
    whose mapping needs a feature the engine lacks is left out (the disk limit is then measured).
    """
    res = spec.resources
    kwargs = {}
    for kind in resource_kinds():  # each kind's limits, as the registry maps them to Docker
        if kind.engine_feature is None or kind.engine_feature in features:
            kwargs.update(kind.docker(getattr(res, kind.name)))
    kwargs.update(
        security_opt=["no-new-privileges"],
        cap_drop=["ALL"],
        privileged=False,
        ipc_mode=spec.ipc_mode or "private",
        init=bool(spec.init),
        mounts=[docker_mount(validate_mount(m)) for m in spec.mounts],
        network_mode=spec.network or "bridge",
    )
    if spec.gpu_device_ids:
        kwargs["device_requests"] = [
            docker.types.DeviceRequest(device_ids=[str(d) for d in spec.gpu_device_ids], capabilities=[["gpu"]])
        ]
    return merge_host_config(kwargs, spec.extra_host_config)


def container_labels(spec: ContainerSpec) -> dict[str, str]:
    """The spec's labels plus ``managed=1`` and the image reference asked for."""
    labels = {k: str(v) for k, v in spec.labels.items()}
    labels[key(MANAGED)] = MANAGED_VALUE
    labels.setdefault(key(IMAGE_REF), spec.image)
    return labels


def create_kwargs(spec: ContainerSpec) -> dict:
    """Arguments of ``APIClient.create_container`` except ``host_config``/``networking_config``.

    Validates the name, user and mounts (raising :class:`RequestError`).
    """
    validate_name(spec.name)
    if spec.network:
        validate_name(spec.network, "network")
    if not spec.image:
        raise RequestError("image", "no image given")
    return merge_create(
        dict(
            image=spec.image,
            command=list(spec.command) if spec.command else None,
            entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
            name=spec.name,
            user=validate_user(spec.user),
            environment={str(k): str(v) for k, v in spec.env.items()},
            labels=container_labels(spec),
            working_dir=spec.working_dir,
            hostname=spec.hostname,
            detach=True,
        ),
        spec.extra_create,
    )


def update_body(resources) -> dict:
    """JSON body of ``POST /containers/{id}/update`` for new limits (of the kinds that can change live)."""
    body = {}
    for kind in resource_kinds():
        if kind.live:
            body.update(kind.docker_live(getattr(resources, kind.name)))
    return body
