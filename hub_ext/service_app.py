"""The hub-managed Berth service: ``python -m jupyter_berth.hub.service``.

JupyterHub starts this process (a managed service, ``c.JupyterHub.services``), restarts
it when it exits and stops it with the hub. It is the only process of a hub
installation that talks to the container engine: it owns the :class:`BerthService`
(ledger, admission, runtime) and offers it over REST to user servers and admins,
authenticating every caller with a JupyterHub token. Besides its own routes (``api/…``:
kernels for provisioners, policies) it serves the server extension's API (``berth/api/…``)
to users' servers in hub mode (``service_user_api``).

Like every hub service it reads ``JUPYTERHUB_SERVICE_URL`` (where to listen),
``JUPYTERHUB_SERVICE_PREFIX`` (its URL prefix), ``JUPYTERHUB_API_URL`` and
``JUPYTERHUB_API_TOKEN`` (to ask the hub who owns a token). Configuration comes from the
deployment's ``jupyter_berth_config.py`` (in the Jupyter config path, ``$BERTH_CONFIG``,
``--config``: the same files the ``berth`` command and the hub read, see
:mod:`jupyter_berth.config_files`; ``c.BerthService.*`` for policies, presets, ledger URL,
``c.BerthHubService.*`` for this process) and the command line (``--port``, ``--ip``).
See docs/hub-service.md.

On start it reconciles with the engine (adopts running kernels, releases allocations
whose container vanished, removes strays) before it accepts requests; on SIGTERM it
stops serving and leaves every kernel running for the next start to adopt.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import secrets
import signal
import sys
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from tornado import web
from traitlets import Bool, Integer, List, Unicode, default
from traitlets.config import Application

from jupyter_berth import __version__
from jupyter_berth.config_files import load_berth_config
from jupyter_berth.errors import BerthError
from jupyter_berth.kernel_launch import FOLDERS_ROOT
from jupyter_berth.principals import HubAccounts
from jupyter_berth.service import BerthService

from . import service_handlers, service_user_api
from .service_base import OAuthCallbackHandler
from .start_request import UserVolume, volume_name

#: Modules of other areas whose ``ROUTES`` are mounted when present (the admin usage pages).
OPTIONAL_ROUTE_MODULES = ("jupyter_berth.hub.usage_page",)


class BerthHubService(Application):
    """The Berth service of a JupyterHub: kernels and policies over REST, identity from hub tokens."""

    name = "berth-hub-service"
    version = __version__
    description = "The hub-managed Berth service: the only process that talks to the container engine."
    examples = """
    python -m jupyter_berth.hub.service                       # as a managed service (env from the hub)
    python -m jupyter_berth.hub.service --config=/etc/jupyterhub/jupyter_berth_config.py --port=10101
    """
    classes = [BerthService, HubOAuth]
    aliases = {
        "port": "BerthHubService.port",
        "ip": "BerthHubService.ip",
        "config": "BerthHubService.config_file",
        "prefix": "BerthHubService.service_prefix",
        "log-level": "Application.log_level",
    }

    config_file = Unicode(
        "",
        config=True,
        help="A Berth config file (c.BerthService.…, c.BerthHubService.…) to read after jupyter_berth_config.py "
        "in the Jupyter config path and $BERTH_CONFIG; it must exist.",
    )
    ip = Unicode(
        config=True,
        help="Address to listen on. Default: the host of $JUPYTERHUB_SERVICE_URL, else 127.0.0.1. "
        "User servers in containers must reach it: use an address of the hub host they can reach.",
    )
    port = Integer(0, config=True, help="Port to listen on. Default: the port of $JUPYTERHUB_SERVICE_URL, else 10101.")
    service_prefix = Unicode(
        config=True, help="URL prefix of every route. Default: $JUPYTERHUB_SERVICE_PREFIX, else /services/berth/."
    )
    user_volume = Unicode(
        "berth-{site}-user-{username}",
        config=True,
        help="Named volume holding a user's files, mounted into each of the user's kernels (the same "
        "volume the user's server has, c.BerthSpawner.user_volume). {site} is the Berth site id, {username} "
        "is escaped as DockerSpawner escapes it, {raw_username} is not. Empty: kernels get no user volume.",
    )
    hub_admins_are_image_admins = Bool(
        True,
        config=True,
        help="Hub admins (and tokens with the custom:berth:admin scope) may change the image "
        "catalog, besides c.ImageCatalog.admin_users / admin_groups. False: only those.",
    )
    template_paths = List(
        Unicode(),
        config=True,
        help="Directories searched for the admin pages' Jinja2 templates (usage.html, usage_plots.html, "
        "usage_error.html, page.html) before Berth's own: a file with the same name replaces Berth's, and "
        '{% extends "berth/usage.html" %} changes only some of its blocks (docs/admin-usage.md).',
    )
    user_volume_target = Unicode(
        "/home/jovyan/work",
        config=True,
        help="Where user_volume is mounted, in kernels as in the user's server (the same path, so "
        "notebook paths mean the same in both).",
    )

    @default("log_level")
    def _log_level_default(self):
        return "INFO"

    @default("log_format")
    def _log_format_default(self):
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s %(module)s:%(lineno)d] %(message)s"

    @default("ip")
    def _ip_default(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _port_default(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or 10101

    @default("service_prefix")
    def _prefix_default(self):
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/services/berth/"

    def initialize(self, argv=None):
        super().initialize(argv)
        for path in load_berth_config(self, self.config_file):
            self.log.info("Loaded config file %s", path)
        if not self.service_prefix.endswith("/"):
            self.service_prefix += "/"

    def user_volume_for(self, user: str, site: str = "") -> UserVolume | None:
        if not self.user_volume:
            return None
        source = volume_name(self.user_volume, user, site=site)
        return UserVolume(source=source, target=self.user_volume_target)

    def templates(self):
        """The admin pages' Jinja2 environment: template_paths first, then Berth's templates."""
        from .usage_templates import environment

        return environment(self.template_paths)

    def routes(self) -> list:
        routes = list(service_handlers.ROUTES) + list(service_user_api.ROUTES)
        for module_name in OPTIONAL_ROUTE_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as e:
                if e.name != module_name:
                    self.log.error("Not serving %s: %s", module_name, e)
                continue
            except Exception:  # one broken page must not take kernel management down
                self.log.exception("Not serving %s", module_name)
                continue
            routes += list(getattr(module, "ROUTES", []))
        prefix = self.service_prefix
        handlers = [(prefix + pattern.lstrip("/"), handler) for pattern, handler in routes]
        handlers.append((prefix + "oauth_callback", OAuthCallbackHandler))
        handlers.append((prefix.rstrip("/") + "/?", service_handlers.RootHandler))
        return handlers

    def make_app(self, service: BerthService, hub_auth: HubOAuth) -> web.Application:
        def log_request(handler):
            status = handler.get_status()
            if status >= 500:
                level = self.log.error
            elif status < 300 and handler.request.method == "GET":
                level = self.log.debug
            else:
                level = self.log.info
            level(
                "%d %s %s (%s) %.1fms",
                status,
                handler.request.method,
                handler.request.uri,
                getattr(handler, "_hub_auth_user_cache", None) and handler._hub_auth_user_cache.get("name"),
                1000 * handler.request.request_time(),
            )

        return web.Application(
            self.routes(),
            berth_service=service,
            berth_log=self.log,
            berth_user_volume=lambda user: self.user_volume_for(user, service.site_id),
            berth_prefix=self.service_prefix,
            berth_hub_admins_are_image_admins=self.hub_admins_are_image_admins,
            berth_templates=self.templates(),
            hub_auth=hub_auth,
            cookie_secret=secrets.token_bytes(32),  # browser sessions re-authenticate through the hub after a restart
            log_function=log_request,
        )

    async def serve(self) -> None:
        """Start the core (reconcile), serve until SIGTERM/SIGINT, then stop; kernels keep running."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        # the hub is asked again about a token after a minute (group changes, revoked tokens); c.HubOAuth.cache_max_age
        hub_auth = HubOAuth(parent=self, **({} if "cache_max_age" in self.config.HubOAuth else {"cache_max_age": 60}))
        if not hub_auth.api_token:
            raise BerthError(
                "no JupyterHub API token: run this as a hub service (c.JupyterHub.services, see "
                "docs/hub-service.md) or set JUPYTERHUB_API_TOKEN and JUPYTERHUB_API_URL"
            )
        if self.user_volume and "handover_targets" not in self.config.WarmPool:  # the warm pool hands it over
            self.config.WarmPool.handover_targets = [self.user_volume_target, FOLDERS_ROOT]
        service = BerthService(parent=self)
        service.folders.principals = HubAccounts(hub_auth.api_url, hub_auth.api_token)  # shares: hub users/groups only
        if "runtime_kind" not in self.config.get("BerthService", {}):
            # a hub's kernels are containers: an engine that is down is an error to see at start, never a
            # reason to fall back to process mode (one user's processes, no isolation)
            service.runtime_kind = "docker"
        plan = await service.start()
        self.log.info(
            "Berth service %s: ledger %s, site %s; %s", __version__, service.ledger_url, service.site_id, plan.summary()
        )
        server = self.make_app(service, hub_auth).listen(self.port, self.ip, xheaders=True)
        self.log.info(
            "Listening on http://%s:%d%s (hub API %s)", self.ip, self.port, self.service_prefix, hub_auth.api_url
        )
        try:
            await stopping.wait()
        finally:
            self.log.info("Stopping: running kernels keep running and are adopted on the next start")
            server.stop()
            await service.stop()

    def start(self):
        asyncio.run(self.serve())


def main(argv=None):
    """Entry point; a :class:`BerthError` is printed for the admin, without a traceback."""
    try:
        app = BerthHubService.instance()
        app.initialize(argv)
        app.start()
    except BerthError as e:
        print(f"berth service: {e.message}", file=sys.stderr)
        sys.exit(1)


__all__ = ["BerthHubService", "main"]
