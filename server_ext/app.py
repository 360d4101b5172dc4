"""The ``berth`` jupyter_server extension.

On server start it brings the Berth kernelspecs in line with what is offered (one per image
version and preset), so the kernels a user sees are always the ones they can start. The REST
API for the sidebar (images, folders, presets, GPUs, my kernels) is added to this app by the
server-extension work.
"""

from __future__ import annotations

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool

from jupyter_berth.errors import BerthError


class BerthExtensionApp(ExtensionApp):
    name = "berth"
    description = "jupyter-berth: every kernel in its own quota-bounded container."

    sync_kernelspecs = Bool(True, config=True, help="Write the Berth kernelspecs (one per offered image and preset) when the server starts.")

    def initialize_settings(self):
        from jupyter_berth.kernels.backend import embedded_service
        from jupyter_berth.service import standalone_user

        from .context import BerthContext

        user, groups = standalone_user()
        config = self.serverapp.config

        async def get_service():
            return await embedded_service(config=config, parent=self)

        self.settings["berth"] = BerthContext(get_service=get_service, user=user, groups=groups,
                                              kernel_manager=self.serverapp.kernel_manager)
        # notebooks saved from a Berth kernel record its environment (image, digest, resources)
        from .notebook_environment import register

        register(self.serverapp)

    def initialize_handlers(self):
        from .routes import handlers

        self.handlers.extend(handlers())

    async def _start_jupyter_server_extension(self, serverapp):
        if not self.sync_kernelspecs:
            return
        from jupyter_berth.kernels.backend import get_backend
        from jupyter_berth.kernels.kernelspecs import sync_from_service

        try:
            backend = await get_backend(config=serverapp.config, parent=self)
            service = getattr(backend, "service", None)
            if service is None:
                return  # hub mode: the hub's Berth service keeps the kernelspecs in the image
            result = await sync_from_service(service)
        except BerthError as e:
            self.log.warning("Berth: kernelspecs not synced: %s", e.message)
            return
        self.log.info("Berth kernelspecs in %s: %d written, %d unchanged, %d removed", result["dir"],
                      len(result["written"]), len(result["unchanged"]), len(result["removed"]))

    async def stop_extension(self):
        from jupyter_berth.kernels.backend import shutdown_embedded_service

        await shutdown_embedded_service()
