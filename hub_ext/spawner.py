"""``BerthSpawner``: a user's server in a quota-bounded container, admitted through the ledger.

A :class:`dockerspawner.DockerSpawner` (entry point ``berth`` in ``jupyterhub.spawners``)
that adds what a shared host needs:

* **a spawn form built from the policy** — image version, CPU, memory, GPU share and
  folders, each with the user's limit beside it (the GPU choices are also bounded by the
  free shares of the host's devices, as the Berth service reports them, and each device's
  free share is shown; see :mod:`.spawn_form_gpu`); the same fields are accepted as JSON
  ``user_options`` through the REST API. Options pass through ``apply_user_options``
  (:mod:`.spawn_form`: fill defaults → validate → apply); a request over the policy is
  refused at once (HTTP 400) with the limit named;
* **admission through the ledger** — the server's own CPU, memory and GPU share are
  reserved as an allocation of kind ``server`` (subject ``user/server-name``), counted in
  the user's totals together with their kernels, and released when the server stops or
  its container is found gone;
* **a queue instead of failures** — when the host is full the spawn waits its turn
  (:mod:`.spawn_queue`) and ``progress()`` tells the user their place and what they wait
  for, up to ``queue_timeout``; the wait happens in the pre-spawn hook, which the hub
  does not time out, so ``start_timeout`` never kills a queued spawn;
* **the same isolation as kernels** — the container is started through the core's
  runtime: uid 1000, ``no-new-privileges``, all capabilities dropped, pids limit, memory
  = memory+swap, CPU quota, never the Docker socket; on the user's own network
  (``berth-u-<user>``), shared with that user's kernels, labelled for the service's
  reconcile (owner, kind ``server``, allocation, site);
* **kernels through the service** — ``BERTH_SERVICE_URL`` tells the server's Berth
  provisioner where the hub's Berth service is; the server has no engine of its own;
* **lifetime and culling** — kernels idle past the policy's ``idle_timeout`` are culled
  by jupyter_server (``BERTH_KERNEL_IDLE_TIMEOUT``); servers past ``max_lifetime`` are
  stopped at the next poll; a server stopped by the idle culler, its lifetime, an OOM or
  a crash is explained on the next spawn form.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import time

from dockerspawner import DockerSpawner
from jupyterhub.spawner import SpawnException
from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default

from jupyter_berth.errors import BerthError, CapacityError, EngineError, PolicyError
from jupyter_berth.imagebuild.singleuser import DEFAULT_SERVER_IMAGE
from jupyter_berth.servers import ServerContainer
from jupyter_berth.start_request import Mount, site_tag

from . import dockerspawner_settings
from .spawn_form import ServerOptions, options_from_form, render_form, resolve_options
from .spawn_queue import QueueTimeout, Ticket
from .spawner_core import HubCore, wait_for_http
from .spawner_lifecycle import ServerLifecycleMixin
from .usage_templates import cached_environment


def _refusal(e: BerthError, reason: str) -> SpawnException:
    """A spawn failure the user reads as is (SpawnException keeps it apart from the log)."""
    status = 400 if isinstance(e, (PolicyError, CapacityError)) or e.status in (400, 403, 404) else e.status
    return SpawnException(e.message, reason=reason, log_message=e.log_message, status_code=status)


def _explain_gpu_failure(e: BerthError, alloc) -> BerthError:
    """Docker without the NVIDIA Container Toolkit cannot honour a GPU device request: say so in words."""
    if alloc is None or not alloc.gpu_devices or "could not select device driver" not in e.message:
        return e
    return EngineError(
        "your server was granted a GPU share, but this host's Docker cannot attach GPUs to containers "
        "(no NVIDIA Container Toolkit is registered with it); start without a GPU, or ask an admin "
        "(docs/admin-gpus.md: c.BerthSpawner.gpu_exposure)",
        log_message=e.log_message,
    )


class BerthSpawner(ServerLifecycleMixin, DockerSpawner):
    """Single-user servers in quota-bounded containers, admitted (or queued) through the Berth ledger."""

    default_request = Dict(
        {"cpu": 0.5, "mem": "1G"},
        config=True,
        help="The server's own resources when the user asks for nothing ({cpu, mem, gpu, pids, shm}); "
        "clamped to the policy's per-server limits. Kernels get their own, separately.",
    )
    offered_images = List(
        Unicode(),
        ["berth/singleuser:*"],
        config=True,
        help="Glob patterns of server images offered in the spawn form (images labelled "
        "io.jupyter.berth.kind=server, built by `berth images bootstrap --recipe singleuser`).",
    )
    service_name = Unicode("berth", config=True, help="Name of the hub's Berth service (c.JupyterHub.services).")
    service_url = Unicode(
        config=True,
        help="BERTH_SERVICE_URL as the user's container reaches it, prefix included, e.g. "
        "http://172.17.0.1:10101/services/berth/. Default: the url of the service named service_name "
        "in c.JupyterHub.services (which must then listen on an address containers reach).",
    )
    queue_timeout = Float(
        900.0,
        config=True,
        help="Seconds a spawn may wait in the queue for room on the host before it fails with a message "
        "saying so. The hub's start_timeout does not apply to this wait.",
    )
    max_starting = Integer(
        0,
        config=True,
        help="Servers booting at once (the rest wait in the queue, in order). Booting JupyterLab is "
        "CPU-bound (about 2.5 CPU-seconds): a few at a time finish sooner than all at once, and "
        "none runs into start_timeout. 0: twice the host's cores + 2.",
    )
    queue_retry_interval = Float(
        2.0,
        config=True,
        help="Seconds between admission attempts of the queue's head while the host is full "
        "(it also retries at once when a server of this hub stops).",
    )
    server_idle_timeout = Float(
        0.0,
        config=True,
        help="The idle culler's --timeout for servers (seconds), so that a server stopped after that "
        "long without activity is explained to its user as culled. 0: no idle culling.",
    )
    user_volume = Unicode(
        "berth-{site}-user-{username}",
        config=True,
        help="Named volume with the user's files, mounted at notebook_dir (the Berth service mounts the same "
        "volume into the user's kernels). {site} is this Berth site's id, so two sites on one engine never "
        "share a user's files; a site upgrading from 'jupyterhub-user-{username}' sets that to keep its volumes. "
        "Empty: no volume (the server's files live and die with its container).",
    )

    def template_namespace(self):
        ns = super().template_namespace()
        core = type(self)._core
        ns["site"] = site_tag(core.service.site_id if core is not None else "")
        return ns

    container_user = Unicode("1000:100", config=True, help="Numeric uid:gid the server runs as (never root).")
    boot_cpu = Float(
        1.0,
        config=True,
        help="CPU quota while the server boots, until it answers; then it is lowered to the server's "
        "allocation. JupyterLab needs about 1.5 CPU-seconds to start: at 0.5 CPU that is 3 s longer. "
        "At most max_starting servers boot at once, which bounds the boost. 0: no boost.",
    )

    hide_missing_gpu = Bool(
        False,
        config=True,
        help="Leave the GPU line out of the spawn form on a host without GPU (by default the form "
        "says 'GPU: none (no NVIDIA GPU on this host …)'). A GPU request is refused either way.",
    )
    gpu_exposure = Enum(
        ["device-request", "environment"],
        "device-request",
        config=True,
        help="How a server's granted GPUs are handed to its container. 'device-request': a Docker device "
        "request for exactly those UUIDs (what `docker run --gpus device=…` sends; needs the NVIDIA "
        "Container Toolkit registered with Docker). 'environment': only NVIDIA_VISIBLE_DEVICES, "
        "for engines whose default runtime is nvidia (it reads that variable), and for declared "
        "devices on a host without a driver (tests). The enforcement plan's variables and mounts "
        "are set either way.",
    )

    @default("image")
    def _image_default(self):
        return DEFAULT_SERVER_IMAGE

    @default("remove")
    def _remove_default(self):
        return True  # files live in the user's volume; a stopped container would be a stray to the service

    @default("use_internal_ip")
    def _internal_ip_default(self):
        return True

    @default("notebook_dir")
    def _notebook_dir_default(self):
        return "/home/jovyan/work"

    @default("default_url")
    def _default_url_default(self):
        return "/lab"

    @default("pull_policy")
    def _pull_policy_default(self):
        return "never"  # images are built on the host (no registry)

    @default("server_token_scopes")
    def _server_token_scopes_default(self):
        # + the user's groups (the Berth service resolves group policies from the token's answer)
        return [
            "users:activity!user",
            "access:servers!server",
            "read:users:groups!user",
            f"access:services!service={self.service_name}",
        ]

    @default("options_form")
    def _options_form_default(self):
        return ""  # Berth's form (DockerSpawner's own lists allowed_images, which Berth's form offers)

    @default("options_from_form")
    def _options_from_form_default(self):
        return options_from_form

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return BerthSpawner._apply_berth_options

    @default("service_url")
    def _service_url_default(self):
        for svc in self.config.get("JupyterHub", {}).get("services", []) or []:
            if svc.get("name") == self.service_name and svc.get("url"):
                return svc["url"].rstrip("/") + f"/services/{self.service_name}/"
        return ""

    # ---- shared state --------------------------------------------------------------------------
    _core: HubCore | None = None
    berth_options: ServerOptions | None = None
    _allocation = None  #: the ledger allocation paying for this server
    _ticket: Ticket | None = None
    _phase = ""  #: what the spawn is doing now (for progress)
    _stop_reason: tuple[str, str] | None = None
    _policy = None  #: the user's effective policy at admission (lifetime, idle timeout)
    _pending_allocation: str | None = None  #: allocation id loaded from the hub's state, looked up on first use
    _network: asyncio.Future | None = None  #: the user's network being made while the spawn is queued

    @property
    def core(self) -> HubCore:
        cls = BerthSpawner
        if cls._core is None:
            cls._core = HubCore(
                self.config,
                self.log,
                max_starting=self.max_starting or 2 * (os.cpu_count() or 1) + 2,
                retry_interval=self.queue_retry_interval,
            )
        return cls._core

    @property
    def groups(self) -> list[str]:
        return sorted(g.name for g in getattr(self.user, "groups", []) or [])

    @property
    def subject(self) -> str:
        return f"{self.user.name}/{self.name or ''}"

    # ---- the form and the options --------------------------------------------------------------
    _admin_limits: tuple | None = None  #: mem/cpu limit and guarantee as configured (options overwrite them)

    async def _context(self):
        dockerspawner_settings.check_spawner(self)
        if self._admin_limits is None:
            self._admin_limits = (self.mem_limit, self.mem_guarantee, self.cpu_limit, self.cpu_guarantee)
        gpus, _ = dockerspawner_settings.gpu_device_request(await self._extra("extra_host_config"))
        return await self.core.form_context(
            self.user.name,
            self.groups,
            self.subject,
            patterns=list(self.offered_images),
            images=dockerspawner_settings.allowed_images(self),
            default_image=self.image if self.image else DEFAULT_SERVER_IMAGE,
            default_request=dockerspawner_settings.default_request(
                dict(self.default_request), self._admin_limits, gpus
            ),
            hide_missing_gpu=self.hide_missing_gpu,
        )

    async def _extra(self, name: str) -> dict:
        """DockerSpawner's ``extra_host_config`` / ``extra_create_kwargs``: evaluated, templates rendered."""
        value = self._eval_if_callable(getattr(self, name))
        if inspect.isawaitable(value):
            value = await value
        return self._render_templates(dict(value or {}))

    async def get_options_form(self):
        if self.options_form:  # an admin's own form wins
            return await super().get_options_form()
        # c.BerthHubService.template_paths (the Berth config the hub loads): the usage pages' override path
        paths = tuple(self.config.get("BerthHubService", {}).get("template_paths", None) or ())
        return render_form(await self._context(), cached_environment(paths))

    @staticmethod
    async def _apply_berth_options(spawner: BerthSpawner, user_options: dict) -> None:
        """fill defaults → validate → apply (refusals are HTTP 400 naming the field or limit)."""
        try:
            options = resolve_options(user_options, await spawner._context())
        except BerthError as e:
            raise _refusal(e, "options") from None
        spawner.berth_options = options
        spawner.image = options.image
        spawner.mem_limit = options.resources.mem
        spawner.cpu_limit = options.resources.cpu

    # ---- admission (pre-spawn hook: no hub timeout; see spawn_queue) ----------------------------
    async def run_pre_spawn_hook(self):
        result = super().run_pre_spawn_hook()
        if inspect.isawaitable(result):
            await result
        if self.berth_options is None:  # an admin replaced apply_user_options: validate anyway
            await BerthSpawner._apply_berth_options(self, self.user_options or {})
        await self._admit()

    async def _admit(self) -> None:
        s = await self.core.open()
        options = self.berth_options
        policy = await s.policy_for(self.user.name, self.groups)
        self._policy = policy
        ticket = self._ticket = Ticket(self.subject, options.resources)
        self._phase = "queued"
        # The user's network (created once, ~0.6 s, one at a time per host) is made while the spawn waits its turn.
        self._network = asyncio.ensure_future(self._ensure_network(s))
        self._network.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved in start()

        async def reserve():
            return await s.reserve_server(
                self.user.name,
                self.groups,
                policy=policy,
                subject=self.subject,
                resources=options.resources,
                image=options.image,
            )

        try:
            self._allocation = await self.core.queue.admit(ticket, reserve, self.queue_timeout)
        except QueueTimeout as e:
            raise SpawnException(
                e.message, reason="queue_timeout", log_message=e.log_message, status_code=503
            ) from None
        except BerthError as e:
            raise _refusal(e, "policy" if isinstance(e, PolicyError) else "capacity") from None
        if ticket.waited > 0.5:
            self.log.info("Berth: %s admitted after %.1f s in the queue", self.subject, ticket.waited)
        self._phase = "starting"

    # ---- start ---------------------------------------------------------------------------------
    def _berth_env(self) -> dict:
        env = {
            "BERTH_SERVICE_URL": self.service_url,
            "BERTH_LIMITS": self.berth_options.resources.describe(),
            "BERTH_SERVER": "1",
        }
        idle = getattr(self._policy, "idle_timeout", 0) or 0
        if idle and not math.isinf(idle):
            env["BERTH_KERNEL_IDLE_TIMEOUT"] = str(int(idle))
        return env

    async def _container(self) -> ServerContainer:
        """What DockerSpawner's settings decide about the container (dockerspawner_settings); the core adds
        the allocation's part."""
        options = self.berth_options
        mounts = [Mount(source=k, target=v["bind"], read_only=v["mode"] == "ro") for k, v in self.volume_binds.items()]
        if self.user_volume and not any(
            m.target == self.notebook_dir for m in mounts
        ):  # an admin's volume there replaces user_volume
            mounts.insert(0, Mount(source=self.format_volume_name(self.user_volume, self), target=self.notebook_dir))
        _, host_config = dockerspawner_settings.gpu_device_request(await self._extra("extra_host_config"))
        return ServerContainer(
            name=self.object_name,
            image=options.image,
            command=await self.get_command(),
            env={**self.get_env(), **self._berth_env()},
            mounts=mounts,
            user=self.container_user,
            folders=list(options.folders or ()),
            boot_cpu=self.boot_cpu,
            gpu_device_request=self.gpu_exposure == "device-request",
            server_name=self.name or None,
            extra_host_config=host_config,
            extra_create=await self._extra("extra_create_kwargs"),
            networks=[self.network_name] if self.network_name not in ("", "bridge") else [],
            post_start_cmd=self.post_start_cmd or None,
        )

    def _container_name(self, s) -> str:
        """The site's name for this server, or the admin's ``name_template`` (DockerSpawner's), which for a named
        server always tells it apart from the user's others (a leftover of the same name is removed at start)."""
        if not {"name_template", "container_name_template"} & set(dockerspawner_settings.configured(self.config)):
            return s.server_container_name(self.user.name, self.subject)
        name = self._render_templates(self.name_template)
        if self.name and "servername}" not in self.name_template:
            name += "--" + self.escape(self.name.lower())
        return name

    async def _ensure_network(self, s) -> str:
        """The user's bridge network, shared with their kernels (the service's name and subnets); the server
        reaches the hub's API and the Berth service on the host, nothing else there."""
        return await s.server_network(
            self.user.name, reach=[self.get_env().get("JUPYTERHUB_API_URL"), self.service_url]
        )

    async def start(self):
        s = await self.core.open()
        alloc, ticket = self._allocation, self._ticket
        if alloc is None:
            raise SpawnException(
                "the server was not admitted (internal error); try again", reason="error", status_code=500
            )
        started = time.monotonic()
        try:
            network = await (self._network or self._ensure_network(s))
            self.object_name = self._container_name(s)
            info = await s.start_server(self.user.name, self.groups, alloc, await self._container(), network)
            self.object_id = info.id
            self._phase = "booting"
            url = f"http://{info.ip}:{self.port}{self.server.base_url if self.server else '/'}api"
            waited = await wait_for_http(
                url, max(5.0, self.start_timeout - (time.monotonic() - started) - 1), alive=self._alive
            )
            if self.boot_cpu > alloc.resources.cpu:  # the boot boost ends: the allocation from now on
                await s.end_server_boost(alloc, info.id)
            self.log.info(
                "Berth: %s answers at %s (%.1f s to boot, %.1f s in all)",
                self.subject,
                info.ip,
                waited,
                time.monotonic() - started,
            )
            return info.ip, self.port
        except BaseException as e:
            if isinstance(e, BerthError):
                e = _explain_gpu_failure(e, alloc)
            await self._release(
                "failed" if isinstance(e, Exception) else "cancelled",
                getattr(e, "message", None) or str(e) or type(e).__name__,
                remove=True,
            )
            if isinstance(e, BerthError):
                raise _refusal(e, "start") from None
            raise
        finally:
            if ticket is not None:
                self.core.queue.done(ticket)
            self._phase = "done"

    async def _alive(self):
        return await self.core.service.server_alive(self.object_id)

    async def progress(self):
        last = None
        while True:
            ticket, phase = self._ticket, self._phase
            if phase == "queued" and ticket is not None:
                event = {"progress": 10, "message": f"In the queue: {ticket.message}"}
            elif phase == "starting":
                event = {"progress": 40, "message": f"Starting your server ({self.berth_options.resources.describe()})"}
            elif phase == "booting":
                event = {"progress": 70, "message": "Waiting for JupyterLab to answer"}
            elif phase == "done":
                return
            else:
                event = {"progress": 5, "message": "Checking your request against your policy"}
            if event != last:
                yield event
                last = event
            if ticket is not None and phase == "queued":
                ticket.changed.clear()
                try:
                    await asyncio.wait_for(ticket.changed.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
            else:
                await asyncio.sleep(0.2)


def open_when_hub_starts() -> None:
    """Open the Berth core as soon as the hub runs, so that the server pool fills before the first spawn.

    Call it from jupyterhub_config.py (JupyterHub reads its config inside its event loop); without it the
    core opens, and the pool starts filling, at the first spawn form or spawn.
    """

    async def opener():
        from jupyterhub.app import JupyterHub

        app = JupyterHub.instance()
        if not (isinstance(app.spawner_class, type) and issubclass(app.spawner_class, BerthSpawner)):
            return
        try:
            await app.spawner_class(config=app.config, log=app.log).core.open()
        except BerthError as e:
            app.log.warning("Berth: could not open the core at hub start (%s); it opens at the first spawn", e.message)

    loop = asyncio.get_running_loop()
    loop.call_soon(lambda: asyncio.ensure_future(opener()))


__all__ = ["BerthSpawner", "open_when_hub_starts"]
