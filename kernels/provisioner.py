"""``BerthProvisioner``: a jupyter_client kernel provisioner that runs each kernel in a container.

Registered under the entry point group ``jupyter_client.kernel_provisioners`` as
``berth``. A kernelspec selects it with::

    "metadata": {"kernel_provisioner": {"provisioner_name": "berth",
                                         "config": {"image": "berth/python:3.11", "preset": "small"}}}

Resources are decided once, server-side (see :meth:`BerthService.resolve_request`):
an explicit request (``BERTH_REQUEST`` JSON in the start request's environment,
set by the Berth server extension's start endpoint), the kernelspec's preset,
the user's default profile, the policy default.

The kernel's working directory is the notebook's directory: the server's root
directory is mounted at the same path inside the container, so relative paths
and absolute paths alike mean the same thing in the kernel as in the server.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

from jupyter_client.provisioning.provisioner_base import KernelProvisionerBase
from traitlets import Dict, Unicode

from jupyter_berth.errors import BerthError
from jupyter_berth.resources import Resources
from jupyter_berth.start_request import Mount, StartRequest, kernel_env

from .backend import get_backend


class BerthProvisioner(KernelProvisionerBase):
    """Launches the kernel as a quota-bounded container through the Berth service."""

    image = Unicode(
        None, allow_none=True, config=True, help="Image of this kernelspec (None: the preset's or the default)."
    )
    preset = Unicode(None, allow_none=True, config=True, help="Preset of this kernelspec (resources).")
    resources = Dict(
        config=True, help="Explicit resources of this kernelspec ({cpu, mem, …}); usually a preset instead."
    )

    launch = None  #: KernelLaunch of the running container
    _backend = None
    _grant: tuple[Resources, str] | None = None  #: resources and image, kept across restarts
    _address: str | None = None  #: the kernel's address, kept across restarts (clients stay connected)
    _folders: list[str] | None = None  #: virtual folders mounted, kept across restarts
    _ended: tuple[str, str] | None = None  #: (reason, message) once the container has stopped
    _notice: str | None = None  #: told to the user in the next kernel after an abnormal end
    _stopping: str | None = None  #: "shutdown" or "restart" once the kernel manager asked for it

    @property
    def has_process(self) -> bool:
        return self.launch is not None

    async def _get_backend(self):
        if self._backend is None:
            self._backend = await get_backend(config=self.config, parent=self)
        return self._backend

    # -- launch -------------------------------------------------------------------------
    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        km = self.parent
        kwargs.pop("extra_arguments", None)
        # The command runs inside the image (berth-kernel); it is kept for jupyter_client's bookkeeping.
        kwargs = await super().pre_launch(cmd=list(self.kernel_spec.argv), **kwargs)
        asked = StartRequest.from_env(kwargs.get("env") or {})  # what the server extension's start put there
        kwargs["berth"] = {
            "folders": asked.folders,
            "request": asked.request or (dict(self.resources) or None),
            "preset": asked.preset or self.preset,
            "image": asked.image or self.image,
        }
        if km is not None and getattr(km, "session", None) is not None:
            kwargs["berth"]["key"] = km.session.key.decode()
        return kwargs

    def _kernel_env(self, env: dict) -> dict:
        out = kernel_env(env)  # the one allowlist (jupyter_berth.start_request)
        out.pop("BERTH_NOTICE", None)  # the notice is this provisioner's own, never inherited
        if self._notice:
            out["BERTH_NOTICE"] = self._notice
        return out

    def _mounts(self, cwd: str | None) -> list[Mount]:
        root = getattr(getattr(self.parent, "parent", None), "root_dir", None) or cwd
        if not root:
            return []
        root = os.path.abspath(os.path.expanduser(root))
        return [Mount(source=root, target=root, read_only=False)]

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> dict:
        backend = await self._get_backend()
        berth = kwargs.get("berth") or {}
        cwd = kwargs.get("cwd")
        cwd = os.path.abspath(str(cwd)) if cwd else None
        start = StartRequest(
            kernel_id=self.kernel_id,
            cwd=cwd,
            mounts=self._mounts(cwd),
            env=self._kernel_env(kwargs.get("env") or {}),
            key=berth.get("key"),
            folders=berth.get("folders") or self._folders,
        )
        if self._grant is not None:  # a restart keeps the same grant, image and address
            start.resources, start.image, start.ip = self._grant[0], self._grant[1], self._address
        else:
            start.request, start.preset, start.image = berth.get("request"), berth.get("preset"), berth.get("image")
        self.launch = await backend.start_kernel(**start.kwargs())
        self._grant = (self.launch.resources, self.launch.image)
        self._folders = start.folders  # a restart mounts the same folders
        self._address = self.launch.connection["ip"]
        self._ended = None
        self._notice = None
        self._stopping = None
        self.connection_info = dict(self.launch.connection)
        self.log.info("Berth kernel %s: %s, %s", self.kernel_id, self.launch.image, self.launch.resources.describe())
        return self.connection_info

    # -- state ---------------------------------------------------------------------------
    async def poll(self) -> int | None:
        if self.launch is None:
            return 0
        if self._ended is not None:
            return 1
        try:
            info = await (await self._get_backend()).kernel_state(self.kernel_id)
        except BerthError as e:
            self.log.warning("Berth kernel %s: cannot read its state: %s", self.kernel_id, e.message)
            # 404: the service has no such kernel of ours (it is gone, e.g. its node left the swarm):
            # tell the user why in the next kernel. Anything else (engine down, a revoked or expired
            # token) says nothing about the kernel: keep it as alive.
            if e.status != 404:
                return None
            await self._record_end()  # released on the engine's word: the service recorded why
            return 1
        if info is not None and info.running:
            return None
        await self._record_end()
        return info.exit_code if info is not None and info.exit_code else 1

    async def _record_end(self):
        """The container stopped on its own (crash, OOM, removed): tell the user why and release."""
        if self._ended is not None:
            return
        backend = await self._get_backend()
        try:
            if self._stopping:  # it exited because it was asked to: account it as that
                self._ended = await backend.stop_kernel(self.kernel_id, self._stopping)
            else:
                self._ended = await backend.kernel_ended(self.kernel_id)
        except BerthError as e:
            self._ended = ("lost", e.message)
        reason, message = self._ended
        if reason in ("oom", "exited", "lost"):
            self.log.warning("Berth kernel %s stopped: %s", self.kernel_id, message)
            self._notice = message

    async def shutdown_requested(self, restart: bool = False) -> None:
        from .culling import is_being_culled

        self._stopping = "restart" if restart else ("culled" if is_being_culled(self.kernel_id) else "shutdown")

    async def wait(self) -> int | None:
        while self.launch is not None:
            ret = await self.poll()
            if ret is not None:
                return ret
            await asyncio.sleep(0.2)
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.launch is None or self._ended is not None:
            return
        await (await self._get_backend()).signal_kernel(self.kernel_id, signum)

    async def kill(self, restart: bool = False) -> None:
        await self._stop(now=True, restart=restart)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def _stop(self, *, now: bool, restart: bool) -> None:
        if self.launch is None or self._ended is not None:
            return
        try:
            self._ended = await (await self._get_backend()).stop_kernel(
                self.kernel_id, self._stopping or ("restart" if restart else "shutdown"), now=now
            )
        except BerthError as e:
            self.log.warning("Berth kernel %s: stop failed: %s", self.kernel_id, e.message)
            self._ended = ("lost", e.message)

    async def cleanup(self, restart: bool = False) -> None:
        """Remove the container and release the allocation (a restart reserves again)."""
        await self._stop(now=True, restart=restart)
        self.launch = None
        if not restart:
            self._grant = None

    def get_shutdown_wait_time(self, recommended: float = 5.0) -> float:
        return max(recommended, 5.0)

    def get_stable_start_time(self, recommended: float = 10.0) -> float:
        return max(recommended, 10.0)

    def resolve_path(self, path: str) -> str | None:
        # Same paths inside and outside the container (the root dir is mounted at its own path).
        path = os.path.expanduser(path)
        if not os.path.isabs(path) and self.launch is not None:
            return None
        return path if os.path.exists(path) else None

    # -- persistence -------------------------------------------------------------------
    async def get_provisioner_info(self) -> dict[str, Any]:
        info = await super().get_provisioner_info()
        if self.launch is not None:
            info["berth"] = self.launch.to_json()
        return info

    async def load_provisioner_info(self, provisioner_info: dict) -> None:
        await super().load_provisioner_info(provisioner_info)
        data = provisioner_info.get("berth")
        if data:
            from jupyter_berth.service import KernelLaunch

            conn = dict(data["connection"])
            conn["key"] = conn["key"].encode()
            self.launch = KernelLaunch(
                kernel_id=data["kernel_id"],
                allocation_id=data["allocation_id"],
                container_id=data["container_id"],
                image=data["image"],
                image_digest=data.get("image_digest"),
                resources=Resources.from_dict(data["resources"]),
                connection=conn,
            )
            self._grant = (self.launch.resources, self.launch.image)
