"""A folder is shared only with a user or group that exists (issue 20, item 8): a share to a
name nobody has yet would pass to whoever later gets that name.

Standalone (no hub), the names checked are the host's accounts (getpwnam/getgrnam); in hub
mode the hub's users and groups (tests/test_hub_forwarding.py, against a real hub).
"""

from __future__ import annotations

import getpass
import grp
import pwd
import uuid

import pytest

from jupyter_berth.errors import RequestError
from jupyter_berth.ledger import Ledger
from jupyter_berth.runtime.docker import DockerRuntime
from jupyter_berth.service import BerthService

from .berth_fixtures import service_config

#: A real account and group of this host other than the caller's own.
HOST_USER = next(p.pw_name for p in pwd.getpwall() if p.pw_name != getpass.getuser())
HOST_GROUP = grp.getgrall()[0].gr_name


@pytest.fixture
async def folders(tmp_path, monkeypatch):
    """The folder manager of a service on its own ledger (not started)."""
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)  # standalone: no hub to ask
    data = tmp_path / "data"
    s = BerthService(config=service_config(str(data)), runtime=DockerRuntime())
    s.ledger = await s._db(Ledger, None, data_dir=str(data))
    try:
        yield s.folders
    finally:
        s.ledger.close()


async def test_standalone_shares_only_with_the_hosts_accounts(folders):
    owner = getpass.getuser()
    await folders.create_folder(owner, name="data")
    ghost_user, ghost_group = f"ghost-{uuid.uuid4().hex[:6]}", f"nogroup-{uuid.uuid4().hex[:6]}"
    for kind, name in (("user", ghost_user), ("group", ghost_group)):
        with pytest.raises(RequestError) as e:
            await folders.share_folder(owner, folder="data", kind=kind, name=name, mode="ro")
        assert e.value.status == 400 and e.value.field == "name"
        assert f"no {kind} {name!r} among this host's accounts" in e.value.message
    assert await folders.folder_shares(owner, folder="data") == []  # nothing recorded
    await folders.share_folder(owner, folder="data", kind="user", name=HOST_USER, mode="ro")
    await folders.share_folder(owner, folder="data", kind="group", name=HOST_GROUP, mode="rw")
    shares = await folders.folder_shares(owner, folder="data")
    assert sorted((s.kind, s.name) for s in shares) == [("group", HOST_GROUP), ("user", HOST_USER)]


async def test_an_admin_may_turn_the_check_off(folders):
    folders.share_check = "none"
    owner = getpass.getuser()
    await folders.create_folder(owner, name="data")
    share = await folders.share_folder(owner, folder="data", kind="user", name="managed-elsewhere", mode="ro")
    assert share.name == "managed-elsewhere"
