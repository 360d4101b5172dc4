"""Who a folder may be shared with: users and groups that exist (issue 20, item 8).

A share names a user or a group. A share to a name nobody has yet would pass to whoever
is later given that name, so a share is accepted only for a principal the directory knows:

* **hub mode**: the hub's users and groups (:class:`HubAccounts` asks the hub's REST API,
  ``GET users/<name>`` / ``groups/<name>``, with the service's token, which needs the scopes
  :data:`HUB_SCOPES`; the ``berth folders`` command does the same where
  ``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_API_TOKEN`` are set);
* **standalone** (``c.FolderManager.share_check = "auto"`` or ``"host"``): the host's
  accounts, ``getpwnam`` for users and ``getgrnam`` for groups (so LDAP/SSSD accounts count
  where the host resolves them), because standalone users are the host's users;
* ``"none"``: no check (an admin's explicit choice, e.g. names managed elsewhere).
"""

from __future__ import annotations

import abc
import asyncio
import grp
import os
import pwd
import urllib.error
import urllib.request
from urllib.parse import quote

from .errors import EngineError, RequestError

#: The scopes the service's hub token needs for :class:`HubAccounts`.
HUB_SCOPES = ("read:users:name", "read:groups:name")


class PrincipalDirectory(abc.ABC):
    """Answers whether a user or group of that name exists."""

    #: Where names are looked up, for messages (``"on this hub"``).
    where: str = ""

    @abc.abstractmethod
    async def exists(self, kind: str, name: str) -> bool:
        """True when the ``kind`` (``"user"`` or ``"group"``) ``name`` exists; raise a BerthError when
        the directory cannot say (the share is then refused: unknown is not accepted)."""


class HostAccounts(PrincipalDirectory):
    """The host's account database (passwd and group, through NSS)."""

    where = "among this host's accounts"

    async def exists(self, kind: str, name: str) -> bool:
        lookup = pwd.getpwnam if kind == "user" else grp.getgrnam

        def found() -> bool:
            try:
                lookup(name)
            except KeyError:
                return False
            return True

        return await asyncio.to_thread(found)  # NSS may ask a directory server: off the loop


class HubAccounts(PrincipalDirectory):
    """Users and groups of the JupyterHub at ``api_url`` (``…/hub/api``), asked with ``api_token``."""

    where = "on this hub"

    def __init__(self, api_url: str, api_token: str, timeout: float = 10.0):
        self.api_url = api_url.rstrip("/") + "/"
        self.api_token = api_token
        self.timeout = timeout

    @classmethod
    def from_environment(cls) -> HubAccounts | None:
        """The hub a process runs under (a hub-managed service, or a shell with the hub's variables)."""
        url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        return cls(url, token) if url and token else None

    async def exists(self, kind: str, name: str) -> bool:
        url = f"{self.api_url}{'users' if kind == 'user' else 'groups'}/{quote(name, safe='')}"
        request = urllib.request.Request(url, headers={"Authorization": f"token {self.api_token}"})

        def ask() -> bool:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout):
                    return True
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return False
                if e.code == 403:
                    raise EngineError(
                        f"the hub would not say whether {kind} {name!r} exists (403), so the share is refused; "
                        f"give the Berth service the scopes {' and '.join(HUB_SCOPES)} (docs/hub-service.md)"
                    ) from None
                raise EngineError(f"the hub did not answer whether {kind} {name!r} exists ({e}); try again") from None
            except OSError as e:
                raise EngineError(f"the hub at {self.api_url} cannot be reached ({e}); try again") from None

        return await asyncio.to_thread(ask)


class AnyPrincipal(PrincipalDirectory):
    """No check (``share_check = "none"``)."""

    where = "(names are not checked)"

    async def exists(self, kind: str, name: str) -> bool:
        return True


async def require(directory: PrincipalDirectory, kind: str, name: str) -> None:
    """Refuse (400, field ``name``) a share to a user or group that does not exist."""
    if not await directory.exists(kind, name):
        raise RequestError(
            "name",
            f"there is no {kind} {name!r} {directory.where}; check the spelling (a share to a name nobody has "
            "would pass to whoever gets that name later)",
        )


__all__ = ["HUB_SCOPES", "AnyPrincipal", "HostAccounts", "HubAccounts", "PrincipalDirectory", "require"]
