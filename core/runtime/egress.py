"""Where kernels and servers may connect to (issue 20, item 6).

By default a container on a Berth user network reaches the internet (pip, datasets) but not:

* link-local addresses (``169.254.0.0/16``), where clouds serve instance metadata and
  credentials, nor any other destination in :attr:`EgressPolicy.deny`;
* the host itself (any of its addresses): only the TCP ports Berth means them to reach (the
  hub's API and the Berth service, added by the processes that know them) and those in
  :attr:`EgressPolicy.allow_host_ports`.

Enforced with iptables on the host, per Berth network and per site: a chain
``BERTH-<site>-F`` (jumped to from ``DOCKER-USER`` for traffic leaving the network's bridge)
and ``BERTH-<site>-I`` (from ``INPUT``, for traffic to the host). Rules are added
idempotently, so the service and the hub's spawner may both apply them, and a restart keeps
them. Needs root and the iptables that Docker itself uses; where they are missing the policy
is not enforced and says so in the log (once). Docker Swarm overlays and the process runtime
are not covered (docs/admin-hub.md says so).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable
from urllib.parse import urlparse

from traitlets import Bool, Integer, List, Unicode, validate
from traitlets.config import LoggingConfigurable

from ..errors import EngineError
from .site_scope import site_tag

#: Docker's chain for user rules in FORWARD (it never flushes it).
#: Seconds a network confined by this process is trusted to stay so before its rules are checked again.
APPLIED_TTL = 60.0
DOCKER_USER = "DOCKER-USER"


def chains(site: str) -> tuple[str, str]:
    """``(forward chain, input chain)`` of a site (iptables names: at most 28 characters)."""
    tag = site_tag(site)[:16] or "default"
    return f"BERTH-{tag}-F", f"BERTH-{tag}-I"


def bridge_of(network_id: str) -> str:
    """The host interface of a Docker bridge network (Docker's naming: ``br-<id[:12]>``)."""
    return f"br-{network_id[:12]}"


def ports_of(*urls: str | None) -> list[int]:
    """The TCP ports of URLs (``http://10.0.0.5:8081/hub/api`` → 8081; default ports for the scheme)."""
    out = []
    for url in urls:
        if not url:
            continue
        parsed = urlparse(url)
        port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme)
        if port and port not in out:
            out.append(port)
    return out


class EgressPolicy(LoggingConfigurable):
    """Egress of kernels and servers (c.EgressPolicy.*): what they may not reach, and the exceptions."""

    enabled = Bool(
        True,
        config=True,
        help="Enforce the egress policy on Berth's per-user networks (iptables on the host; needs root). "
        "False: containers reach whatever the host's routing reaches, link-local metadata included.",
    )
    deny = List(
        Unicode(),
        ["169.254.0.0/16"],
        config=True,
        help="Destinations (CIDR) kernels and servers may not reach. The default is the link-local range, "
        "where clouds serve instance metadata and credentials; add e.g. a site's internal ranges.",
    )
    allow = List(
        Unicode(),
        config=True,
        help="Destinations (CIDR) let through although deny covers them (checked first).",
    )
    allow_host_ports = List(
        Integer(),
        config=True,
        help="TCP ports on the host itself that kernels and servers may reach, besides the hub API and the "
        "Berth service (which Berth lets through by itself). Every other port on every host address is "
        "refused, so that kernels cannot reach the host's own services (a database, an engine API, ssh).",
    )
    block_host = Bool(
        True, config=True, help="Refuse connections to the host's own addresses except the allowed ports."
    )

    @validate("deny", "allow")
    def _cidrs(self, proposal):
        out = []
        for value in proposal["value"]:
            try:
                out.append(str(ipaddress.ip_network(value, strict=False)))
            except ValueError:
                raise EngineError(
                    f"c.EgressPolicy.{proposal['trait'].name}: {value!r} is not an address range; "
                    "write it as CIDR, e.g. 169.254.0.0/16"
                ) from None
        return out

    def __init__(self, **kw):
        super().__init__(**kw)
        self._warned = False
        self._lock = threading.Lock()
        #: (bridge, site, ports) → when applied: a kernel start on a network already confined runs no
        #: iptables (each call is a process); re-checked after APPLIED_TTL seconds, forgotten by sweep
        self._applied: dict[tuple, float] = {}

    # -- what the service and the spawner call --------------------------------------------------------
    async def apply(self, network_id: str, site: str, ports: Iterable[int] = ()) -> bool:
        """Put network ``network_id`` (a bridge) of ``site`` under the policy, letting ``ports`` on the
        host through; True when enforced. Idempotent."""
        if not self.enabled or not network_id:
            return False
        ports = sorted({*self.allow_host_ports, *ports})
        done = (bridge_of(network_id), site, tuple(ports))
        if time.monotonic() - self._applied.get(done, -APPLIED_TTL) < APPLIED_TTL:
            return True
        try:
            await asyncio.to_thread(self._apply_sync, *done[:2], ports)
            self._applied[done] = time.monotonic()
        except EngineError as e:
            if not self._warned:
                self._warned = True
                self.log.warning("Berth: the egress policy is NOT enforced: %s", e.message)
            return False
        return True

    def default_ports(self) -> list[int]:
        """What a hub-managed service process knows it must let through: the hub API and itself."""
        return ports_of(os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_SERVICE_URL"))

    # -- iptables ------------------------------------------------------------------------------------
    def _iptables(self, *args: str, check: bool = True) -> bool:
        exe = shutil.which("iptables")
        if exe is None:
            raise EngineError("no iptables on this host (Debian: apt-get install iptables)")
        proc = subprocess.run([exe, "-w", "10", *args], capture_output=True, text=True)
        if proc.returncode != 0 and check:
            raise EngineError(f"iptables {' '.join(args)} failed: {proc.stderr.strip() or proc.returncode}")
        return proc.returncode == 0

    def _ensure(self, chain: str, rule: list[str], *, position: int | None = None) -> None:
        if self._iptables("-C", chain, *rule, check=False):
            return
        if position is None:
            self._iptables("-A", chain, *rule)
        else:
            self._iptables("-I", chain, str(position), *rule)

    def _ensure_chain(self, chain: str) -> bool:
        """Create ``chain`` unless it exists; True when it was created."""
        if self._iptables("-n", "-L", chain, check=False):
            return False
        return self._iptables("-N", chain, check=False)

    def _apply_sync(self, bridge: str, site: str, ports: list[int]) -> None:
        forward, inbound = chains(site)
        with self._lock:
            if self._ensure_chain(forward):
                for cidr in self.allow:
                    self._iptables("-A", forward, "-d", cidr, "-j", "RETURN")
                for cidr in self.deny:
                    self._iptables("-A", forward, "-d", cidr, "-j", "REJECT")
            if self._ensure_chain(inbound):
                self._iptables("-A", inbound, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "RETURN")
                if self.block_host:
                    self._iptables("-A", inbound, "-j", "REJECT")
            for port in ports:  # before the final REJECT (position 2: after the conntrack rule)
                self._ensure(inbound, ["-p", "tcp", "--dport", str(port), "-j", "RETURN"], position=2)
            if not self._iptables("-n", "-L", DOCKER_USER, check=False):
                self._iptables("-N", DOCKER_USER)
                self._iptables("-I", "FORWARD", "-j", DOCKER_USER)
            self._ensure(DOCKER_USER, ["-i", bridge, "-j", forward], position=1)
            self._ensure("INPUT", ["-i", bridge, "-j", inbound], position=1)
            self._prune(forward, inbound)

    def _prune(self, forward: str, inbound: str) -> None:
        """Drop jumps for bridges that no longer exist (their networks were removed)."""
        for parent, target in ((DOCKER_USER, forward), ("INPUT", inbound)):
            proc = subprocess.run(
                [shutil.which("iptables") or "iptables", "-w", "10", "-S", parent], capture_output=True, text=True
            )
            for line in proc.stdout.splitlines():
                words = line.split()
                if words[:1] == ["-A"] and f"-j {target}" in line and "-i" in words:
                    bridge = words[words.index("-i") + 1]
                    if not os.path.exists(f"/sys/class/net/{bridge}"):
                        self._iptables("-D", parent, *words[2:], check=False)

    def berth_chains(self) -> set[str]:
        """The names of every Berth egress chain on this host (of any site)."""
        proc = subprocess.run(
            [shutil.which("iptables") or "iptables", "-w", "10", "-S"], capture_output=True, text=True
        )
        return {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("-N BERTH-")}

    def sweep(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove jumps to Berth chains from bridges that no longer exist, then the chains (not in ``keep``)
        left with no jump that had one: networks removed, nothing left to confine. A chain still being set
        up (no jump yet) is left alone. Returns the chains removed."""
        emptied, alive = set(), set()
        self._applied.clear()
        with self._lock:
            for parent in (DOCKER_USER, "INPUT"):
                proc = subprocess.run(
                    [shutil.which("iptables") or "iptables", "-w", "10", "-S", parent], capture_output=True, text=True
                )
                for line in proc.stdout.splitlines():
                    words = line.split()
                    if words[:1] != ["-A"] or "-i" not in words or not words[-1].startswith("BERTH-"):
                        continue
                    if os.path.exists(f"/sys/class/net/{words[words.index('-i') + 1]}"):
                        alive.add(words[-1])
                    else:
                        self._iptables("-D", parent, *words[2:], check=False)
                        emptied.add(words[-1])
            removed = sorted(emptied - alive - set(keep))
            for chain in removed:
                self._iptables("-F", chain, check=False)
                self._iptables("-X", chain, check=False)
        return removed

    def remove_site(self, site: str) -> None:
        """Remove a site's chains and every jump to them (for a site taken down, and for tests)."""
        forward, inbound = chains(site)
        self._applied.clear()
        with self._lock:
            for parent, target in ((DOCKER_USER, forward), ("INPUT", inbound)):
                proc = subprocess.run(
                    [shutil.which("iptables") or "iptables", "-w", "10", "-S", parent], capture_output=True, text=True
                )
                for line in proc.stdout.splitlines():
                    words = line.split()
                    if words[:1] == ["-A"] and words[-2:] == ["-j", target]:
                        self._iptables("-D", parent, *words[2:], check=False)
                self._iptables("-F", target, check=False)
                self._iptables("-X", target, check=False)


__all__ = ["EgressPolicy", "bridge_of", "chains", "ports_of"]
