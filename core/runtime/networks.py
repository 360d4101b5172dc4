"""Per-user bridge networks, created once even when several callers race.

Docker (20.10) does not make network names unique: two ``create`` calls at the
same moment both succeed, and later lookups by that name fail as "ambiguous".
``ensure_network_sync`` therefore serialises creation with a host-wide file
lock (``flock`` on a file in :data:`LOCK_DIR`, which also orders threads and
event loops inside one process), asks the engine to check for duplicates, and
as a last resort (callers on other hosts) keeps the oldest network of that
name and removes the one it made itself.

These functions take a docker-py ``APIClient`` and block: call them through the
runtime's executor.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import logging
import os
import tempfile
from datetime import datetime, timezone

import docker.errors
import docker.types

from ..errors import EngineError
from .base import parse_engine_time
from .labels import key
from .site_scope import SITE, belongs_to, foreign_message

log = logging.getLogger(__name__)

#: Where the lock files live (shared by every berth process on the host).
LOCK_DIR = os.path.join(tempfile.gettempdir(), "berth-locks")


@contextlib.contextmanager
def host_lock(name: str = "networks"):
    """An exclusive ``flock`` on ``LOCK_DIR/<name>.lock``; a no-op when the file cannot be made.

    The folder and file are world-writable (sticky folder) so that berth processes
    of different users on one host share the lock.
    """
    path = os.path.join(LOCK_DIR, f"{name}.lock")
    try:
        if not os.path.isdir(LOCK_DIR):
            os.makedirs(LOCK_DIR, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(LOCK_DIR, 0o1777)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        log.debug("no host lock %s: %s", path, e)
        yield
        return
    try:
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _created(network: dict) -> datetime:
    return parse_engine_time(network.get("Created")) or datetime.max.replace(tzinfo=timezone.utc)


def networks_named(api, name: str) -> list[dict]:
    """Networks with exactly this name (the engine's filter matches substrings), oldest first."""
    nets = [n for n in api.networks(names=[name]) if n.get("Name") == name]
    return sorted(nets, key=lambda n: (_created(n), n["Id"]))


#: How each kind of network is created: a host's bridge, or a Swarm's attachable overlay.
NETWORK_KINDS = {
    "bridge": {"driver": "bridge"},
    "overlay": {"driver": "overlay", "attachable": True, "scope": "swarm"},
}


def free_subnets(candidates: list[str], used: list[str]) -> list[str]:
    """The ``candidates`` that overlap none of the ``used`` subnets, in order."""
    taken = [ipaddress.ip_network(u, strict=False) for u in used]
    return [c for c in candidates if not any(ipaddress.ip_network(c, strict=False).overlaps(t) for t in taken)]


def used_subnets(api) -> list[str]:
    """Every subnet of every network the engine lists (on a Swarm manager: the swarm's overlays too)."""
    return [
        cfg["Subnet"]
        for n in api.networks()
        for cfg in ((n.get("IPAM") or {}).get("Config") or [])
        if cfg.get("Subnet")
    ]


def _create(api, name: str, labels: dict[str, str], subnets: list[str] | None, kind: str = "bridge") -> str:
    """Create the network, on the first candidate subnet that overlaps no other network.

    A Swarm manager accepts an overlay network whose subnet overlaps another overlay and only
    its allocator finds out, later: the network is never allocated, and whatever joins it
    waits forever ("Pool overlaps with other one"). Overlay candidates are therefore checked
    against the swarm's networks first.
    """
    common = dict(NETWORK_KINDS[kind], labels=labels, check_duplicate=True)
    if not subnets:
        return api.create_network(name, **common)["Id"]
    candidates = free_subnets(subnets, used_subnets(api)) if kind == "overlay" else list(subnets)
    last = None
    for subnet in candidates:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        try:
            return api.create_network(name, ipam=ipam, **common)["Id"]
        except docker.errors.APIError as e:
            if "overlap" not in str(e.explanation or e).lower():
                raise
            last = e
    what, setting = (
        ("overlay network", "c.SwarmRuntime.subnet_pool / subnet_prefix")
        if kind == "overlay"
        else ("network", "c.BerthService.user_subnets / user_subnet_prefix")
    )
    raise EngineError(
        f"no free subnet for {what} {name}: all {len(subnets)} candidate subnets ({subnets[0]} …) overlap "
        f"other networks. Remove the networks of users who left (docker network ls --filter "
        f"label=io.jupyter.berth.managed=1), or give the pool more room ({setting})",
        log_message=f"{name}: {last}",
    )


def _ours(network: dict, name: str, labels: dict[str, str]) -> str:
    """The network's id when it belongs to the site in ``labels``; else refuse (never join another site's)."""
    site = labels.get(key(SITE))
    if site and not belongs_to(network.get("Labels"), site):
        raise EngineError(foreign_message("network", name, network.get("Labels"), site))
    return network["Id"]


#: Seconds a runtime trusts a network it found or made to still exist (it forgets it when it removes it, or
#: when a container cannot be created on it): a kernel start looks its user's network up once, not twice.
KNOWN_TTL = 30.0


def ensure_network_sync(
    api, name: str, labels: dict[str, str], subnets: list[str] | None = None, kind: str = "bridge"
) -> str:
    """The id of the network ``name`` (a ``bridge``, or an attachable Swarm ``overlay``), created with ``labels``
    when missing.

    Creation is serialised per host (:func:`host_lock`); a duplicate made by a caller elsewhere at
    the same moment is removed, keeping the oldest.
    """
    existing = networks_named(api, name)
    if existing:
        return _ours(existing[0], name, labels)
    with host_lock("networks"):
        existing = networks_named(api, name)
        if existing:
            return _ours(existing[0], name, labels)
        mine = None
        try:
            mine = _create(api, name, labels, subnets, kind)
        except docker.errors.APIError as e:
            if e.status_code != 409:  # 409: someone else made it first
                raise
        existing = networks_named(api, name)
    if mine and existing and existing[0]["Id"] != mine:
        try:
            api.remove_network(mine)
        except docker.errors.APIError as e:
            log.warning("could not remove duplicate network %s (%s): %s", name, mine[:12], e)
    if not existing:
        manager = "the Swarm manager" if kind == "overlay" else "the Docker engine"
        raise EngineError(f"{manager} did not create network {name}; see its log")
    return existing[0]["Id"]


def remove_network_sync(api, name: str) -> int:
    """Remove every network called ``name``; returns how many were removed (0: none existed)."""
    removed = 0
    for network in networks_named(api, name):
        try:
            api.remove_network(network["Id"])
            removed += 1
        except docker.errors.NotFound:
            continue
    return removed


def ensure_isolated_network_sync(api, name: str, labels: dict[str, str]) -> str:
    """The id of the bridge network ``name`` with inter-container traffic off (only the host reaches its
    containers: the warm pools wait on it), created with ``labels`` when missing."""
    with host_lock("networks"):
        existing = networks_named(api, name)
        if existing:
            return existing[0]["Id"]
        return api.create_network(
            name,
            driver="bridge",
            labels=labels,
            check_duplicate=True,
            options={"com.docker.network.bridge.enable_icc": "false"},
        )["Id"]
