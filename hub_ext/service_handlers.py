"""REST handlers of the hub's Berth service: kernels, and policies changed at run time.

Routes are relative to the service's prefix (``/services/berth/`` by default); see
docs/hub-service.md for bodies and answers. Every kernel route acts on the caller's
own kernels only: another user's kernel id is answered exactly like an unknown one
(404), so nobody can even learn that it exists. Policy changes are stored in the
ledger and apply to the next request, with no restart.
"""

from __future__ import annotations

import json
import signal as signal_module

from tornado import web

from jupyter_berth import __version__, server_scope
from jupyter_berth.errors import NotFoundError, RequestError
from jupyter_berth.images import catalog
from jupyter_berth.resources import resource_kinds
from jupyter_berth.wire import container_to_json

from .service_base import BerthAPIHandler
from .start_request import parse_start

#: Why a caller may say a kernel was stopped (written into its usage record).
STOP_REASONS = ("shutdown", "restart", "culled")
#: Signals a caller may send to its kernel.
SIGNALS = {
    s.name: int(s)
    for s in (
        signal_module.SIGINT,
        signal_module.SIGTERM,
        signal_module.SIGKILL,
        signal_module.SIGHUP,
        signal_module.SIGQUIT,
        signal_module.SIGUSR1,
        signal_module.SIGUSR2,
    )
}


def allocation_json(a, *, with_owner: bool = False) -> dict:
    data = {
        "kernel_id": a.subject,
        "allocation_id": a.id,
        "image": a.image,
        "image_digest": a.image_digest,
        "resources": a.resources.to_dict(),
        "state": a.state,
        "container_id": a.container_id,
        "created_at": a.created_at,
        "started_at": a.started_at,
        "server": a.server,
    }
    if with_owner:
        data["owner"] = a.owner
    return data


class RootHandler(web.RequestHandler):
    """``GET {prefix}``: answers the hub's "is it up?" check; says where the API is (no login needed)."""

    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"service": "berth", "api": self.request.path.rstrip("/") + "/api/"}))


class InfoHandler(BerthAPIHandler):
    """``GET api/info``: who the service thinks you are."""

    async def get(self):
        who = self.berth_identity()
        self.write_json(
            {
                "service": "berth",
                "mode": "hub",
                "version": __version__,
                "user": who["name"],
                "kind": who["kind"],
                "groups": who["groups"],
                "admin": who["admin"],
            }
        )


class KernelsHandler(BerthAPIHandler):
    """``GET api/kernels`` (mine; ``?all=1`` every user's, admins only), ``POST api/kernels`` (start)."""

    async def get(self):
        if self.get_argument("all", "0").lower() in ("1", "true", "yes"):
            self.require_admin()
            allocs = await self.service.list_kernels()
            self.write_json({"kernels": [allocation_json(a, with_owner=True) for a in allocs]})
            return
        who = self.require_user()
        server = server_scope.from_header(self.request.headers.get(server_scope.HEADER))  # a server's own only
        allocs = [a for a in await self.service.list_kernels(who["name"]) if server_scope.belongs(a, server)]
        self.write_json({"kernels": [allocation_json(a) for a in allocs]})

    async def post(self):
        who = self.require_user()
        kw = parse_start(self.json_body(), self.settings["berth_user_volume"](who["name"]))
        if kw.get("preset"):
            try:
                self.service.preset(kw["preset"])
            except NotFoundError as e:
                raise RequestError("preset", e.message) from None
        if kw.get("image"):
            try:
                catalog.find(await self.service.images.catalog_view(), kw["image"])
            except NotFoundError as e:
                raise RequestError("image", e.message + "; ask for one of those") from None
        if kw.get("folders"):  # before anything is reserved: 404 for a folder the caller may not see, as elsewhere
            await self.service.folders.folder_mounts(who["name"], who["groups"], kw["folders"])
        kw["server"] = server_scope.from_header(self.request.headers.get(server_scope.HEADER))
        try:
            launch = await self.service.start_kernel(who["name"], who["groups"], **kw)
        except NotFoundError as e:  # a name in the body (default image, folder) that does not exist: bad input
            raise RequestError("folders" if kw.get("folders") else "image", e.message) from None
        self.write_json(launch.to_json(), status=201)


class KernelHandler(BerthAPIHandler):
    """``GET api/kernels/{id}`` (its container's state), ``DELETE api/kernels/{id}?reason=&now=`` (stop)."""

    async def get(self, kernel_id):
        who = self.require_user()
        info = await self.service.kernel_state(who["name"], kernel_id)
        self.write_json({"kernel_id": kernel_id, "container": container_to_json(info)})

    async def delete(self, kernel_id):
        who = self.require_user()
        reason = self.get_argument("reason", "shutdown")
        if reason not in STOP_REASONS:
            raise RequestError("reason", f"{reason!r} is not a stop reason; expected one of {', '.join(STOP_REASONS)}")
        now = self.get_argument("now", "0").lower() in ("1", "true", "yes")
        end_reason, message = await self.service.stop_kernel(who["name"], kernel_id, reason, now=now)
        self.write_json({"kernel_id": kernel_id, "reason": end_reason, "message": message})


class KernelSignalHandler(BerthAPIHandler):
    """``POST api/kernels/{id}/signal`` with ``{"signal": 2}`` or ``{"signal": "SIGINT"}``."""

    async def post(self, kernel_id):
        who = self.require_user()
        value = self.json_object().get("signal")
        if isinstance(value, str) and value.upper() in SIGNALS:
            signum = SIGNALS[value.upper()]
        elif isinstance(value, int) and not isinstance(value, bool) and value in SIGNALS.values():
            signum = value
        else:
            raise RequestError(
                "signal",
                f"{value!r} is not a signal a kernel may be sent; expected one of "
                f"{', '.join(f'{n} ({v})' for n, v in SIGNALS.items())}",
            )
        await self.service.signal_kernel(who["name"], kernel_id, signum)
        self.write_json({"kernel_id": kernel_id, "signal": signum})


class KernelEndedHandler(BerthAPIHandler):
    """``POST api/kernels/{id}/ended``: its container stopped by itself; account and release."""

    async def post(self, kernel_id):
        who = self.require_user()
        reason, message = await self.service.kernel_ended(who["name"], kernel_id)
        self.write_json({"kernel_id": kernel_id, "reason": reason, "message": message})


class MyPolicyHandler(BerthAPIHandler):
    """``GET api/policy``: the caller's effective policy (with where each field comes from) and what is in use."""

    async def get(self):
        who = self.require_user()
        policy = await self.service.policy_for(who["name"], who["groups"])
        usage = await self.service.user_usage(who["name"])
        self.write_json(
            {
                "policy": policy.to_json(),
                "usage": {  # every resource kind the policy totals (the registry's), then the counts
                    **{k.name: usage.get(k.name) for k in resource_kinds() if k.total_limit},
                    "kernels": usage.kernels,
                    "servers": usage.servers,
                },
            }
        )


class PoliciesHandler(BerthAPIHandler):
    """``GET api/policies`` (admin): the policies of the config file and those stored at run time (which win)."""

    async def get(self):
        self.require_admin()
        self.write_json(await self.service.get_policies())


class PolicyHandler(BerthAPIHandler):
    """``GET/PUT/DELETE api/policies/default``, ``…/groups/{name}``, ``…/users/{name}`` (admin).

    PUT stores a policy (validated; a bad field is a 400 naming it) that overrides the
    config file's entry of the same scope from the next request on. DELETE removes the
    stored one (the config file's entry applies again).
    """

    def _scope(self, kind: str, name: str | None) -> tuple[str, str | None, str]:
        scope = {"default": "default", "groups": "group", "users": "user"}[kind]
        where = "the default policy" if scope == "default" else f"the policy of {scope} {name!r}"
        return scope, name, where

    async def get(self, kind, name=None):
        self.require_admin()
        scope, name, _ = self._scope(kind, name)
        found = await self.service.get_policies(scope, name)
        self.write_json({"scope": scope, "name": name, "stored": found["stored"], "config": found["config"]})

    async def put(self, kind, name=None):
        who = self.require_admin()
        scope, name, where = self._scope(kind, name)
        body = self.json_object()
        stored = await self.service.set_policy(scope, name, body, by=who["name"])
        self.log.info("%s set %s: %s", who["name"], where, stored)
        self.write_json({"scope": scope, "name": name, "stored": stored})

    async def delete(self, kind, name=None):
        who = self.require_admin()
        scope, name, where = self._scope(kind, name)
        if not await self.service.delete_policy(scope, name):
            raise NotFoundError(
                f"no policy is stored for {where} (a policy from the config file is changed by "
                "editing the file, or overridden with PUT)"
            )
        self.log.info("%s deleted %s", who["name"], where)
        self.write_json({"scope": scope, "name": name, "stored": None})


_KERNEL = r"(?P<kernel_id>[^/]+)"
#: (pattern relative to the service prefix, handler)
ROUTES = [
    (r"api/info", InfoHandler),
    (r"api/kernels", KernelsHandler),
    (rf"api/kernels/{_KERNEL}", KernelHandler),
    (rf"api/kernels/{_KERNEL}/signal", KernelSignalHandler),
    (rf"api/kernels/{_KERNEL}/ended", KernelEndedHandler),
    (r"api/policy", MyPolicyHandler),
    (r"api/policies", PoliciesHandler),
    (r"api/policies/(?P<kind>default)", PolicyHandler),
    (r"api/policies/(?P<kind>groups|users)/(?P<name>[^/]+)", PolicyHandler),
]

__all__ = ["ROUTES", "STOP_REASONS", "SIGNALS"]
