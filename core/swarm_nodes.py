"""Keep the ledger's hosts in step with Docker Swarm's node list.

On a multi-node runtime (:class:`~jupyter_berth.runtime.swarm.SwarmRuntime`) the service's
``refresh_capacity()`` hands the runtime's capacity report to :func:`refresh`, which

* records every node that may run Berth containers in the ledger (``set_node_capacity``):
  its capacity as Berth may use it (cores × ``cpu_overcommit``, memory minus
  ``mem_reserved``, capped by the node labels ``berth.cpu`` / ``berth.mem`` an admin sets
  to keep room for other work), its GPUs (advertised as Swarm generic resources) and its
  state: ``ready``; ``draining`` when Swarm's availability is pause or drain, or the node
  lost the labels Berth requires; ``down`` when Swarm says so;
* marks ``down`` the ledger hosts that came from Swarm but are no longer in its list
  (``docker node rm``);
* releases the live allocations on every down host with reason ``lost`` and a message for
  their users naming the node, and removes their services (Swarm would otherwise keep the
  task's record; a node that comes back then stops the old container).

Admission then sees the cluster as the sum of these hosts and places each request on one
of them; a request larger than any single host is refused as such (``never_fits``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .errors import BerthError
from .resources import format_bytes, parse_memory

#: Node label capping the cores Berth may allot on a node (``docker node update --label-add berth.cpu=8``).
CPU_LABEL = "berth.cpu"
#: Node label capping the memory Berth may allot on a node (``berth.mem=64G``).
MEM_LABEL = "berth.mem"
#: Ledger label holding the Swarm node id (marks a ledger host as one that came from Swarm).
SWARM_ID = "swarm.id"


@dataclass
class NodeRefresh:
    """What one refresh wrote: hosts and their capacity, hosts newly down, allocations released.

    As JSON (what ``refresh_capacity()`` returns) it also carries ``cpu``/``mem``: the sum over
    ready hosts, the same keys the single-host report has.
    """

    nodes: list[dict] = field(default_factory=list)
    down: list[str] = field(default_factory=list)
    lost: list[dict] = field(default_factory=list)  #: {"allocation", "owner", "kind", "subject", "node", "message"}

    def to_json(self) -> dict:
        return {
            "nodes": self.nodes,
            "down": self.down,
            "lost": self.lost,
            "cpu": sum(n["cpu"] for n in self.nodes if n["state"] == "ready"),
            "mem": sum(n["mem"] for n in self.nodes if n["state"] == "ready"),
        }


def node_capacity(node: dict, cpu_overcommit: float = 1.0, mem_reserved: int = 0) -> tuple[float, int]:
    """What Berth may allot on ``node`` (a runtime node report): ``(cores, bytes)``.

    Labels that cannot be read are ignored with the node's full capacity kept; the
    service logs them.
    """
    cpu = round(float(node.get("cpu") or 0) * cpu_overcommit, 3)
    mem = max(0, int(node.get("mem") or 0) - int(mem_reserved))
    labels = node.get("labels") or {}
    if labels.get(CPU_LABEL):
        cpu = min(cpu, float(labels[CPU_LABEL]))
    if labels.get(MEM_LABEL):
        mem = min(mem, parse_memory(labels[MEM_LABEL], MEM_LABEL))
    return cpu, mem


def lost_message(kind: str, node: str, why: str) -> str:
    """What the owner of a kernel (or server) on a node that left reads."""
    return (
        f"the host {node} that ran this {kind} {why}; the {kind} is lost (unsaved state in it is gone) and its "
        f"resources were released. Start a new {kind}: Berth places it on a host that is up."
    )


def _why(node: dict | None) -> str:
    if node is None:
        return "was removed from the Docker Swarm"
    return f"left the cluster (Docker Swarm reports it {node.get('state', 'down')})"


async def refresh(service, cap: dict) -> dict:
    """Write the runtime's node report (``cap["nodes"]``) to the ledger; release what ran on down hosts."""
    ledger = service.ledger
    reserved = parse_memory(service.mem_reserved, "mem_reserved")
    known = {n.name: n for n in await service._db(ledger.nodes)}
    result = NodeRefresh()
    reported = {}
    for node in cap.get("nodes") or []:
        name = node["name"]
        reported[name] = node
        if not node.get("eligible", True) and name not in known:
            continue  # never ran Berth containers and may not: stays out of the ledger
        try:
            cpu, mem = node_capacity(node, service.cpu_overcommit, reserved)
        except (BerthError, ValueError) as e:
            service.log.warning(
                "Swarm node %s: bad %s/%s label (%s); using its full capacity", name, CPU_LABEL, MEM_LABEL, e
            )
            cpu, mem = node_capacity({**node, "labels": {}}, service.cpu_overcommit, reserved)
        state = node.get("ledger_state", "ready")
        if state == "ready" and not node.get("eligible", True):
            state = "draining"
        labels = {
            **(node.get("labels") or {}),
            SWARM_ID: node["id"],
            "swarm.role": node.get("role"),
            "swarm.state": node.get("state"),
            "swarm.availability": node.get("availability"),
            "swarm.address": node.get("address"),
        }
        await service._db(
            ledger.set_node_capacity, name, cpu=cpu, mem=mem, gpu=node.get("gpus") or None, labels=labels, state=state
        )
        if state == "down" and (name not in known or known[name].state != "down"):
            result.down.append(name)
        result.nodes.append({"node": name, "cpu": cpu, "mem": mem, "gpus": len(node.get("gpus") or ()), "state": state})
    for name, row in known.items():
        if name in reported or SWARM_ID not in (row.labels or {}):
            continue  # still in the swarm, or a host Berth did not learn from Swarm: left alone
        if row.state != "down":
            await service._db(ledger.set_node_state, name, "down")
            result.down.append(name)
    down = {n["node"] for n in result.nodes if n["state"] == "down"}
    down |= {name for name, row in known.items() if name not in reported and SWARM_ID in (row.labels or {})}
    for name in sorted(down):
        for alloc in await service._db(ledger.live_allocations, node=name):
            message = lost_message(alloc.kind, name, _why(reported.get(name)))
            released = await service._db(ledger.release, alloc.id, "lost", message=message)
            if released is None:
                continue
            result.lost.append(
                {
                    "allocation": alloc.id,
                    "owner": alloc.owner,
                    "kind": alloc.kind,
                    "subject": alloc.subject,
                    "node": name,
                    "message": message,
                }
            )
            service.log.warning(
                "%s %s of %s lost with host %s: allocation %s released",
                alloc.kind,
                alloc.subject,
                alloc.owner,
                name,
                alloc.id,
            )
            if alloc.container_id:
                try:
                    await service.runtime.remove(alloc.container_id)
                except BerthError as e:
                    service.log.warning(
                        "could not remove service %s of lost %s %s: %s",
                        alloc.container_id,
                        alloc.kind,
                        alloc.subject,
                        e.message,
                    )
    if result.down:
        service.log.warning("Swarm hosts down: %s", ", ".join(result.down))
    summary = result.to_json()  # cpu and mem: the ready hosts' sum, what the cluster offers now
    summary["node"] = cap.get("node")
    summary["gpus"] = sum(n["gpus"] for n in result.nodes if n["state"] == "ready")
    summary["describe"] = f"{summary['cpu']:g} CPU and {format_bytes(summary['mem'])} on {len(result.nodes)} hosts"
    return summary


async def live_allocations(service) -> list:
    """Live allocations on the hosts Berth learnt from Swarm (what reconcile and sampling cover)."""
    swarm_hosts = {n.name for n in await service._db(service.ledger.nodes) if SWARM_ID in (n.labels or {})}
    return [a for a in await service._db(service.ledger.live_allocations) if a.node in swarm_hosts]


async def watch(service, interval: float) -> None:
    """Refresh the hosts every ``interval`` seconds until cancelled (a failed round is logged)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await service.refresh_capacity()
        except Exception:  # keep watching whatever one round did
            service.log.exception("Swarm node refresh failed")
