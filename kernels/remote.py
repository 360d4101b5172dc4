"""``RemoteBackend``: the hub's Berth service over HTTP, with the user's hub token.

In hub mode a user server never talks to the container engine: its kernel
provisioners call the hub-managed Berth service (``jupyter_berth.hub.service``)
with the user's JupyterHub token, and the service derives who is asking from that
token alone. :class:`RemoteBackend` offers the same five coroutines as
:class:`~jupyter_berth.kernels.backend.EmbeddedBackend` and returns the same
objects (:class:`~jupyter_berth.service.KernelLaunch`,
:class:`~jupyter_berth.wire.ContainerInfo`, ``(reason, message)``), so the
provisioner cannot tell them apart.

Errors come back as the :mod:`jupyter_berth.errors` class the service raised, with
the service's own message (``{"message", "error", "field"|"limit"|...}`` bodies).
A service that does not answer is an :class:`EngineError` naming its URL: 503 when
nothing listens (restarting, hub down), 502 when a request got no answer. Calls other
than the read-only ones the sidebar polls wait and retry first, for ``retry_seconds``
(90 s: the hub notices a dead managed service within about 30 s and starts it again, and
the service listens once it has reconciled), so that no start fails across a service
restart (issue 20, item 3): a refused connection is retried, a request cut off mid-way is
retried when repeating it is harmless (GET, PUT, DELETE), and a start cut off mid-way is
undone (whatever half of it the restarted service adopted is stopped) and made again. The server extension forwards its REST API in hub mode through
the same client (:meth:`RemoteBackend.fetch`).

The wire format both ends share (``*_to_json`` / ``*_from_json``) is :mod:`jupyter_berth.wire`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from jupyter_berth import errors, server_scope
from jupyter_berth.errors import EngineError
from jupyter_berth.resources import Resources
from jupyter_berth.service import KernelLaunch
from jupyter_berth.start_request import StartRequest
from jupyter_berth.wire import ContainerInfo, container_from_json, error_from_json, launch_from_json

#: Methods that are harmless to repeat when a request was cut off before its answer.
IDEMPOTENT = ("GET", "PUT", "DELETE")


class ServiceInterrupted(EngineError):
    """A request that may have reached the service got no answer (the service died or restarted)."""

    status = 502


# ---- the client ------------------------------------------------------------------------------
class RemoteBackend:
    """Calls the hub's Berth service as the owner of ``token``.

    ``url`` is the service's base URL including its prefix, e.g.
    ``http://hub:10101/services/berth/`` (``BERTH_SERVICE_URL``); ``token`` a JupyterHub
    token of the user (in a user server: ``JUPYTERHUB_API_TOKEN``).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 120.0,
        retry_seconds: float = 90.0,
        server: str | None = None,
    ):
        if not url:
            raise errors.RequestError("BERTH_SERVICE_URL", "the Berth service URL is empty")
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout = timeout  #: seconds one request may take (a start may wait for the engine)
        self.retry_seconds = retry_seconds  #: how long to retry while the service does not answer
        #: the hub server this process is (its kernels are its own: jupyter_berth.server_scope); None: not one
        self.server = server

    async def fetch(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        body: bytes | None = None,
        content_type: str | None = None,
        retry: bool = True,
    ) -> HTTPResponse:
        """One request to the service as the token's owner: its answer, whatever the status.

        ``path`` is relative to the service's URL, ``query`` an encoded query string. A service
        that cannot be reached is an :class:`EngineError` naming the URL: 503 when nothing
        listens (it may be restarting; retried for ``retry_seconds`` first when ``retry``),
        502 when the request may have arrived but no answer came (timeout, reset, no route).
        """
        url = self.url + path + (f"?{query}" if query else "")
        headers = {
            "Authorization": f"token {self.token}",
            "Accept": "application/json",
            **server_scope.to_headers(self.server),
        }
        if content_type:
            headers["Content-Type"] = content_type
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=body,
            request_timeout=self.timeout,
            connect_timeout=min(self.timeout, 20.0),
            follow_redirects=False,
        )
        started = time.monotonic()
        deadline = started + (self.retry_seconds if retry else 0)
        delay = 0.25
        while True:
            try:
                return await AsyncHTTPClient().fetch(request, raise_error=False)
            except ConnectionRefusedError as e:  # nothing listens (restarting): the request never arrived
                if time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                waited = f"; retried for {time.monotonic() - started:.1f} s" if retry else ""
                raise EngineError(
                    f"the Berth service at {self.url} does not answer ({e}{waited}); it may be restarting (the hub "
                    "starts it again by itself): nothing was done, try again in a minute, and ask the hub's admin "
                    "if it persists"
                ) from None
            except (OSError, HTTPClientError) as e:  # timeout, reset, unreachable: the request may have arrived
                if method in IDEMPOTENT and time.monotonic() + delay < deadline:  # harmless to repeat
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
                    continue
                raise ServiceInterrupted(
                    f"the Berth service at {self.url} did not answer {method} {path}: {e}", status=502
                ) from None

    async def call(
        self, method: str, path: str, body: Any = None, *, query: dict | None = None, retry: bool = True
    ) -> Any:
        """A JSON call: the answer's JSON, or the service's error raised again as its :class:`BerthError`."""
        response = await self.fetch(
            method,
            path,
            query=urlencode(query) if query else "",
            body=json.dumps(body).encode() if body is not None else None,
            content_type="application/json" if body is not None else None,
            retry=retry,
        )
        text = response.body.decode("utf-8", "replace") if response.body else ""
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = None
        if response.code >= 400:
            if data is None and response.code in (401, 403):
                data = {"message": f"the Berth service refused the token ({response.code}); log in to the hub again"}
            raise error_from_json(response.code, data)
        return data

    @staticmethod
    def _kernel_path(kernel_id: str, *rest: str) -> str:
        return "/".join(["api/kernels", quote(kernel_id, safe=""), *rest])

    # -- the five coroutines of a backend ------------------------------------------------------
    async def start_kernel(
        self,
        *,
        kernel_id: str,
        request: dict | None = None,
        preset: str | None = None,
        image: str | None = None,
        cwd: str | None = None,
        mounts: list | None = None,
        env: dict | None = None,
        resources: Resources | None = None,
        ip: str | None = None,
        key: str | None = None,
        folders: list[str] | None = None,
    ) -> KernelLaunch:
        start = StartRequest(
            kernel_id=kernel_id,
            request=request,
            preset=preset,
            image=image,
            folders=folders,
            cwd=cwd,
            mounts=list(mounts or []),
            env=dict(env or {}),
            ip=ip,
            key=key,
            resources=resources,
        )
        body = start.to_json()  # the hub's service reads it with StartRequest.from_json
        try:
            return launch_from_json(await self.call("POST", "api/kernels", body))
        except ServiceInterrupted:
            # The service went away with the start in flight (killed, restarting). Whatever half of it the
            # restarted service adopted is stopped (waiting for it to be back), then the start is made again.
            with contextlib.suppress(errors.NotFoundError):
                await self.stop_kernel(kernel_id, reason="restart", now=True)
            return launch_from_json(await self.call("POST", "api/kernels", body))

    async def kernel_state(self, kernel_id: str) -> ContainerInfo | None:
        data = await self.call("GET", self._kernel_path(kernel_id), retry=False)
        return container_from_json(data.get("container"))

    async def signal_kernel(self, kernel_id: str, signum: int) -> None:
        await self.call("POST", self._kernel_path(kernel_id, "signal"), {"signal": int(signum)})

    async def stop_kernel(self, kernel_id: str, reason: str = "shutdown", now: bool = False) -> tuple[str, str]:
        data = await self.call("DELETE", self._kernel_path(kernel_id), query={"reason": reason, "now": int(bool(now))})
        return data["reason"], data["message"]

    async def kernel_ended(self, kernel_id: str) -> tuple[str, str]:
        data = await self.call("POST", self._kernel_path(kernel_id, "ended"), {})
        return data["reason"], data["message"]

    # -- more of the service, for front ends and tests ----------------------------------------
    async def list_kernels(self) -> list[dict]:
        return (await self.call("GET", "api/kernels", retry=False))["kernels"]

    async def policy(self) -> dict:
        return await self.call("GET", "api/policy", retry=False)

    async def info(self) -> dict:
        return await self.call("GET", "api/info", retry=False)


__all__ = ["RemoteBackend"]
