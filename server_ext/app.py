"""The ``berth`` jupyter_server extension.

On server start it brings the Berth kernelspecs in line with what is offered (one per image
version and preset), so the kernels a user sees are always the ones they can start. It serves
the REST API of the sidebar under ``berth/api/`` (images, folders, presets, profile, policy,
GPUs, my kernels, my usage): standalone from the embedded service, in hub mode
(``BERTH_SERVICE_URL`` set) forwarded to the hub's Berth service (``forwarding``).
"""

from __future__ import annotations

import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool
from traitlets.config import Application

from jupyter_berth.errors import BerthError


class BerthExtensionApp(ExtensionApp):
    name = "berth"
    description = "jupyter-berth: every kernel in its own quota-bounded container."

    sync_kernelspecs = Bool(
        True, config=True, help="Write the Berth kernelspecs (one per offered image and preset) when the server starts."
    )

    def load_config_file(self, suppress_errors: bool = True) -> None:
        """``jupyter_berth_config`` from the config path (jupyter_server's rule), then ``$BERTH_CONFIG``.

        The same files the ``berth`` command and the hub's Berth service read (jupyter_berth.config_files).
        """
        super().load_config_file(suppress_errors)
        from jupyter_berth.config_files import CONFIG_ENV, named_file

        if os.environ.get(CONFIG_ENV):
            path = named_file(os.environ[CONFIG_ENV], f"${CONFIG_ENV}")
            Application.load_config_file(self, os.path.basename(path), path=os.path.dirname(path))

    def initialize_settings(self):
        from jupyter_berth.kernels.backend import embedded_service, hub_service_backend
        from jupyter_berth.service import standalone_user

        from .context import BerthContext

        km = self.serverapp.kernel_manager
        remote = hub_service_backend()
        if remote is not None:  # hub mode: the hub's Berth service answers, as the server's owner

            async def no_embedded_service():
                raise BerthError(f"this server is in hub mode: the Berth service is the hub's ({remote.url})")

            self.settings["berth"] = BerthContext(
                get_service=no_embedded_service,
                remote=remote,
                kernel_manager=km,
                user=os.environ.get("JUPYTERHUB_USER", ""),
                extra={"hub": True},
            )
            self.log.info("Berth: hub mode, the REST API is forwarded to %s", remote.url)
        else:
            user, groups = standalone_user()
            config = self.serverapp.config

            async def get_service():
                return await embedded_service(config=config, parent=self)

            self.settings["berth"] = BerthContext(get_service=get_service, user=user, groups=groups, kernel_manager=km)
        # kernels the idle culler shuts down are accounted as culled, not as shut down
        from jupyter_berth.kernels.culling import mark_culling

        mark_culling(km)
        # notebooks saved from a Berth kernel record its environment (image, digest, resources)
        from .notebook_environment import register

        register(self.serverapp)

    def initialize_handlers(self):
        from .routes import handlers

        self.handlers.extend(handlers(hub_mode=self.settings["berth"].remote is not None))

    async def _start_jupyter_server_extension(self, serverapp):
        if not self.sync_kernelspecs:
            return
        from jupyter_berth.kernels.backend import get_backend
        from jupyter_berth.kernelspecs import sync_from_service

        context = self.settings["berth"]
        if context.remote is not None:  # hub mode: what the hub's service offers this user
            context.extra["resync_kernelspecs"] = self.resync_kernelspecs
            await self.resync_kernelspecs()
            return
        try:
            backend = await get_backend(config=serverapp.config, parent=self)
            result = await sync_from_service(backend.service)
        except BerthError as e:
            self.log.warning("Berth: kernelspecs not synced: %s", e.message)
            return
        self._log_sync(result)

    async def resync_kernelspecs(self, images: dict | None = None) -> None:
        """Hub mode: bring the kernelspecs in line with the hub's offer (at start, and after an image call);
        ``images``: a ``GET berth/api/images`` answer already in hand."""
        from jupyter_berth.kernelspecs import sync_from_remote

        try:
            result = await sync_from_remote(self.settings["berth"].remote, images=images)
        except BerthError as e:
            self.log.warning("Berth: kernelspecs not synced from the hub's Berth service: %s", e.message)
            return
        self._log_sync(result)

    def _log_sync(self, result: dict) -> None:
        self.log.info(
            "Berth kernelspecs in %s: %d written, %d unchanged, %d removed",
            result["dir"],
            len(result["written"]),
            len(result["unchanged"]),
            len(result["removed"]),
        )

    async def stop_extension(self):
        from jupyter_berth.kernels.backend import shutdown_embedded_service

        await shutdown_embedded_service()
