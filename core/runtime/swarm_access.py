"""User servers on a Docker Swarm: how the hub reaches them and where their files live.

A user's server on Swarm runs on whichever node Berth's admission chose, on the user's
attachable overlay network, at an overlay address no host outside the overlay can route
to. The hub (its proxy, and the Berth service the server calls) must therefore be *on*
that network: :attr:`SwarmAccessMixin.attach_containers` names the hub's containers on the
manager's engine, and every user network the runtime makes or uses is connected to them
(``docker network connect``; overlay networks are attachable). The proxy then routes to
``http://<server's overlay address>:8888``, and the server reaches the hub's API and the
Berth service by those containers' names (Docker's DNS answers them on every network they
are attached to).

Named volumes (the user's home) are per node under Docker's ``local`` driver: a server
that lands on another node next time would find an empty home. :attr:`volume_driver` and
:attr:`volume_driver_options` name a driver every node shares (``local`` with NFS options,
or a volume plugin), written into each service's mount so the node creates the volume the
same way wherever the task lands.

A mixin of :class:`~jupyter_berth.runtime.swarm.SwarmRuntime`; the blocking functions take a
docker-py ``APIClient`` of the manager and run through the runtime's executor.
"""

from __future__ import annotations

import logging
import time

import docker.errors
from traitlets import Dict, HasTraits, List, Unicode

from ..errors import EngineError
from .hardening import validate_name
from .labels import creation_labels

log = logging.getLogger(__name__)
#: Tries of one attachment when the manager misses its deadline.
ATTACH_ATTEMPTS = 6


def attach_sync(api, network_id: str, containers: list[str]) -> list[str]:
    """Connect each of ``containers`` (names or ids, on this engine) to the network unless it already is;
    the containers newly connected. A container that does not exist raises ``EngineError`` naming it."""
    attached = set((api.inspect_network(network_id).get("Containers") or {}).keys())
    done = []
    for name in containers:
        try:
            full_id = api.inspect_container(name)["Id"]
        except docker.errors.NotFound:
            raise EngineError(
                f"c.SwarmRuntime.attach_containers names {name!r}, which is no container on the Swarm manager's "
                "engine; start the hub's container there, or correct the setting"
            ) from None
        if full_id in attached:
            continue
        for attempt in range(1, ATTACH_ATTEMPTS + 1):
            try:
                api.connect_container_to_network(full_id, network_id)
                break
            except docker.errors.APIError as e:
                if "already exists" in str(e):  # a concurrent attach of the same container
                    break
                # The manager allocates a network attachment for a standalone container. On a loaded manager that
                # can miss the engine's own deadline ("context deadline exceeded"), and a network made a moment
                # ago can still be unknown to the engine's network controller ("not found"): try again.
                transient = "deadline exceeded" in str(e) or isinstance(e, docker.errors.NotFound)
                if not transient or attempt == ATTACH_ATTEMPTS:
                    raise
                log.info("attaching %s to network %s failed (attempt %d: %s); retrying", name, network_id, attempt, e)
                time.sleep(0.5 * attempt)
        done.append(name)
    return done


class SwarmAccessMixin(HasTraits):
    """The hub's way onto users' overlay networks, and the users' volumes, for the Swarm runtime."""

    attach_containers = List(
        Unicode(),
        config=True,
        help="Containers on the Swarm manager's engine (names or ids) connected to every user's overlay network "
        "Berth makes or uses: the hub's, its proxy's and the Berth service's, when they run in containers. The "
        "proxy then reaches each user server at its overlay address, and servers reach the hub and the service "
        "by container name. Empty: the hub must route to the overlay networks by other means "
        "(see docs/admin-scale-out.md).",
    )
    volume_driver = Unicode(
        "",
        config=True,
        help="Volume driver of the users' named volumes on Swarm (their homes), one every node shares, so a "
        "server keeps its files whichever node it lands on: 'local' with NFS options in volume_driver_options, "
        "or a volume plugin installed on every node. Empty: the node's default ('local'), a home per node.",
    )
    volume_driver_options = Dict(
        Unicode(),
        config=True,
        help="Options of volume_driver, {name: value}, e.g. {'type': 'nfs', 'o': 'addr=10.0.0.5,rw', "
        "'device': ':/exports/{volume}'}; '{volume}' is replaced by the volume's name.",
    )

    def _init_access(self) -> None:
        #: volume name → VolumeOptions for the service mount (labels, driver)
        self._volume_options: dict[str, dict] = {}

    async def ensure_volume(self, name: str, labels: dict[str, str] | None = None) -> str:
        """Remember the volume's labels and driver; the node that runs the task creates it at the first mount.

        Swarm has no cluster-wide volume list to check: a volume of another site on some node is not
        detected here (the single-host runtime refuses one).
        """
        validate_name(name, "volume")
        options: dict = {"Labels": creation_labels(labels)}
        if self.volume_driver:
            driver_opts = {k: v.replace("{volume}", name) for k, v in self.volume_driver_options.items()}
            options["DriverConfig"] = {"Name": self.volume_driver, "Options": driver_opts}
        self._volume_options[name] = options
        return name

    async def _attach_hub(self, network_id: str, name: str) -> None:
        """Connect the hub's containers (:attr:`attach_containers`) to the user's network ``name``."""
        if not self.attach_containers:
            return
        done = await self.docker(attach_sync, network_id, list(self.attach_containers))
        if done:
            self.log.info("Swarm: attached %s to the user network %s", ", ".join(done), name)


__all__ = ["SwarmAccessMixin", "attach_sync"]
