"""What an admin may add to a Berth container's Docker arguments, and what is always refused.

DockerSpawner admins pass ``extra_host_config`` and ``extra_create_kwargs`` straight to
docker-py. Berth merges them **after** its hardening (:mod:`.hardening`), from an allowlist:
keys that change nothing about isolation or accounting (DNS, log driver, tmpfs, ulimits,
an OCI runtime such as gVisor's ``runsc``, labels, a working directory...). Every other key
is refused with the Berth setting that does the same; keys that would break isolation
(``privileged``, added capabilities, the host's network/PID/IPC/UTS/user namespace, a
loosened ``security_opt``, the engine's socket) are refused by name, whatever else is set.

Pure functions, one rule in one place: the hub refuses a configuration with them at start
(``jupyter_berth.hub.dockerspawner_settings``) and the runtime checks again before the engine
sees a spec (``ContainerSpec.extra_host_config`` / ``extra_create``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import RequestError

#: ``create_host_config`` keys merged after the hardening as given.
HOST_CONFIG_ALLOWED = frozenset(
    {
        "dns",
        "dns_opt",
        "dns_search",
        "extra_hosts",
        "group_add",
        "log_config",
        "oom_score_adj",
        "read_only",
        "runtime",
        "storage_opt",
        "tmpfs",
        "ulimits",
    }
)
#: ``create_container`` keys merged after Berth's (Berth's own labels win over the admin's).
CREATE_ALLOWED = frozenset({"domainname", "healthcheck", "hostname", "labels", "stop_signal", "working_dir"})

#: Keys Berth decides itself, and the Berth setting an admin uses instead.
EQUIVALENTS = {
    "mem_limit": "c.Spawner.mem_limit (the default request) bounded by the policy's max_mem",
    "memswap_limit": "nothing: memory+swap always equals the memory limit",
    "mem_reservation": "c.Spawner.mem_guarantee (the default request)",
    "cpu_quota": "c.Spawner.cpu_limit (the default request) bounded by the policy's max_cpu",
    "cpu_period": "c.Spawner.cpu_limit",
    "nano_cpus": "c.Spawner.cpu_limit",
    "cpu_shares": "c.Spawner.cpu_limit",
    "cpuset_cpus": "c.Spawner.cpu_limit",
    "shm_size": 'c.BerthSpawner.default_request = {"shm": ...} bounded by the policy',
    "pids_limit": "the policy's max_pids",
    "binds": "c.DockerSpawner.volumes / read_only_volumes",
    "mounts": "c.DockerSpawner.volumes / read_only_volumes",
    "volumes": "c.DockerSpawner.volumes / read_only_volumes",
    "volumes_from": "c.DockerSpawner.volumes",
    "network_mode": "c.DockerSpawner.network_name (a network the server joins besides its user's own)",
    "networking_config": "c.DockerSpawner.network_name",
    "links": "c.DockerSpawner.network_name",
    "user": "c.BerthSpawner.container_user (numeric, never root)",
    "environment": "c.Spawner.environment",
    "device_requests": "a GPU device request (capabilities [['gpu']]) in extra_host_config, or c.GpuManager",
    "devices": "GPUs through c.GpuManager (Berth grants them); no other host device",
    "port_bindings": "nothing: the hub reaches a server on its user's network, no port is published",
    "ports": "nothing: no port is published",
    "publish_all_ports": "nothing: no port is published",
    "auto_remove": "c.DockerSpawner.remove",
    "image": "c.DockerSpawner.image / allowed_images",
    "name": "c.DockerSpawner.name_template",
    "command": "c.Spawner.cmd / args",
    "entrypoint": "c.Spawner.cmd",
    "cap_drop": "nothing: every capability is always dropped",
    "init": "nothing: Berth's images bring their own init",
    "ipc_mode": "nothing: a private IPC namespace (GPU sharing through MPS is Berth's to decide)",
}

_SOCKET_WORDS = ("docker.sock", "containerd.sock", "podman.sock")
_LOOSE_SECURITY = ("unconfined", "label=disable", "label:disable", "no-new-privileges=false", "no-new-privileges:false")


def _host_ns(value: Any) -> bool:
    text = str(value or "").strip().lower()
    return text == "host" or text.startswith("container:")


def isolation_breakers(options: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(key, why)`` for each key in ``options`` that would break a Berth container's isolation."""
    found = []
    for key, value in options.items():
        if key == "privileged" and value:
            found.append((key, "a privileged container is root on the host"))
        elif key == "cap_add" and value:
            found.append((key, f"added capabilities ({value}) undo Berth's cap_drop ALL"))
        elif key in ("network_mode", "pid_mode", "ipc_mode", "uts_mode", "userns_mode", "cgroupns") and _host_ns(value):
            found.append((key, f"{key}={value!r} shares a namespace of the host (or another container)"))
        elif key == "security_opt":
            loose = [v for v in value or () if any(w in str(v).lower() for w in _LOOSE_SECURITY)]
            if loose:
                found.append((key, f"{loose} loosens the container's confinement"))
        elif key in ("binds", "volumes", "mounts", "devices") and any(w in repr(value) for w in _SOCKET_WORDS):
            found.append((key, "it mounts the container engine's socket, which is root on the host"))
    return found


def check_extra(options: Mapping[str, Any] | None, allowed: frozenset, setting: str) -> dict:
    """``options`` if every key is allowed; else a :class:`RequestError` naming the setting and the key."""
    options = dict(options or {})
    breakers = isolation_breakers(options)
    if breakers:
        key, why = breakers[0]
        raise RequestError(
            setting, f"{key} is refused: {why}. Berth containers are always isolated; nothing re-enables it"
        )
    for key in options:
        if key not in allowed:
            instead = EQUIVALENTS.get(key)
            raise RequestError(
                setting,
                f"{key} is not merged into Berth's containers"
                + (f"; use {instead}" if instead else "")
                + f" (allowed here: {', '.join(sorted(allowed))})",
            )
    return options


def merge_host_config(kwargs: dict, extra: Mapping[str, Any] | None) -> dict:
    """Berth's hardened host-config kwargs with the admin's allowed extras merged after them."""
    extra = check_extra(extra, HOST_CONFIG_ALLOWED, "extra_host_config")
    if "oom_score_adj" in extra and int(extra["oom_score_adj"]) < 0:
        raise RequestError("extra_host_config", "oom_score_adj below 0 would shield the container from the OOM killer")
    return {**kwargs, **extra}


def merge_create(kwargs: dict, extra: Mapping[str, Any] | None) -> dict:
    """Berth's create kwargs with the admin's allowed extras merged (Berth's labels win)."""
    extra = check_extra(extra, CREATE_ALLOWED, "extra_create_kwargs")
    out = {**kwargs, **{k: v for k, v in extra.items() if k != "labels"}}
    if "labels" in extra:
        out["labels"] = {**{str(k): str(v) for k, v in dict(extra["labels"]).items()}, **kwargs.get("labels", {})}
    return out


__all__ = [
    "CREATE_ALLOWED",
    "EQUIVALENTS",
    "HOST_CONFIG_ALLOWED",
    "check_extra",
    "isolation_breakers",
    "merge_create",
    "merge_host_config",
]
