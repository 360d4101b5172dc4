"""Virtual folders: the service's folder manager (create, list, rename, delete, share, quotas, mounts).

:class:`FolderManager` is composed into :class:`~jupyter_berth.service.BerthService` as
``service.folders`` (settings: ``c.FolderManager.*``); it is given the ledger, the runtime and
the service's data directory (see :mod:`jupyter_berth.area`). Rules (who may do what, why a
foreign folder is "not found") are in :mod:`jupyter_berth.folders.model`; the host side (paths,
measuring and deleting without following links) in :mod:`jupyter_berth.folders.fs`; rows in
:mod:`jupyter_berth.folders.store`. See ``docs/folders.md``.

Quotas are *measured and soft*: usage is measured by walking the folders (off the event
loop, cached for ``folder_usage_ttl`` seconds), and an owner at or over a limit gets no
new folder and no new read-write mount; writes inside an already running kernel are not
stopped by the filesystem.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone

from traitlets import Dict, Enum, Float, Instance, Integer, TraitError, Unicode, validate

from .. import principals
from ..area import AreaManager
from ..errors import ConflictError, NotFoundError, PolicyError, RequestError
from ..kernel_launch import FOLDERS_ROOT
from ..pool import mount_handover
from ..principals import AnyPrincipal, HostAccounts, HubAccounts, PrincipalDirectory
from ..runtime.base import Mount
from ..runtime.labels import parse_labels
from . import fs as folder_fs
from . import store as folder_ledger
from .model import (
    MODE_WORDS,
    Access,
    Caller,
    Folder,
    FolderQuota,
    FolderUsage,
    FolderView,
    Share,
    access,
    check_kind,
    check_mode,
    check_name,
    check_principal,
    over_quota,
    owner_words,
    parse_reference,
)

#: How quotas are enforced, as the API reports it.
ENFORCEMENT = "measured (soft): new folders and new read-write mounts are refused at or over a limit"


class FolderManager(AreaManager):
    """Virtual folders (``service.folders``): create, share, quota, and mounts for kernels."""

    data_dir = Unicode(help="The service's data directory (BerthService.data_dir); folders live under it by default.")

    folders_dir = Unicode(
        config=True,
        help="Where folders live on the host (default: <BerthService.data_dir>/folders). In hub mode the "
        "container engine must see this path too.",
    )
    folder_uid = Integer(
        1000, config=True, help="Owner (uid) of new folder directories: the kernel user, so kernels can write."
    )
    folder_gid = Integer(100, config=True, help="Group (gid) of new folder directories.")
    folder_quota = Dict(
        {"max_bytes": "10G", "max_folders": 20, "max_files": 500000},
        config=True,
        help="Quota of every owner (a user, or a group for its group folders): max_bytes (disk space of all "
        "the owner's folders, e.g. '10G'), max_folders, max_files; null = unlimited. Measured, soft.",
    )
    user_folder_quotas = Dict(config=True, help="{user: quota} overriding folder_quota field by field.")
    group_folder_quotas = Dict(
        config=True, help="{group: quota} overriding folder_quota field by field for group folders."
    )
    folder_admins = Dict(
        config=True,
        help="{group: [user, '@group', ...]}: who administers the group's folders (create, "
        "rename, delete, share; read-write access). Hub admins always do.",
    )
    folder_usage_ttl = Float(60.0, config=True, help="Seconds a measured folder size is reused before measuring again.")
    share_check = Enum(
        ["auto", "host", "none"],
        "auto",
        config=True,
        help="Which user and group names a folder may be shared with (a share to a name nobody has would pass "
        "to whoever gets it later). 'auto': the hub's users and groups in hub mode (also for `berth folders` where "
        "JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN are set), else as 'host'; 'host': "
        "the host's accounts (getpwnam/getgrnam); 'none': no check.",
    )
    #: Set by a front end that knows the principals better than the host (the hub's service: the hub).
    principals = Instance(PrincipalDirectory, allow_none=True)

    def _principal_directory(self) -> PrincipalDirectory:
        if self.share_check == "none":
            return AnyPrincipal()
        if self.share_check == "auto":
            hub = self.principals or HubAccounts.from_environment()
            if hub is not None:
                return hub
        return HostAccounts()

    @validate("folder_quota", "user_folder_quotas", "group_folder_quotas")
    def _check_quota(self, proposal):
        value, name = proposal["value"], proposal["trait"].name
        try:
            specs = {name: value} if name == "folder_quota" else {f"{name}.{k}": v for k, v in value.items()}
            for where, spec in specs.items():
                FolderQuota.parse(spec, where)
        except RequestError as e:
            raise TraitError(e.message) from None
        return value

    @validate("folder_admins")
    def _check_admins(self, proposal):
        for group, who in proposal["value"].items():
            if isinstance(who, str) or not all(isinstance(w, str) for w in who):
                raise TraitError(f"folder_admins.{group}: expected a list of user names and '@group' names")
        return proposal["value"]

    # ---- plumbing ---------------------------------------------------------------------------
    @property
    def _folders_root(self) -> str:
        return os.path.abspath(self.folders_dir or os.path.join(self.data_dir, "folders"))

    def _caller(self, user: str, groups=(), admin: bool = False) -> Caller:
        return Caller.make(check_principal(user, "user"), groups, admin=admin, folder_admins=self.folder_admins)

    def _path(self, f: Folder) -> str:
        return folder_fs.folder_path(self._folders_root, f.owner_kind, f.owner, f.id)

    async def _fs(self, fn, *args):
        return await asyncio.to_thread(fn, *args)

    async def _visible(self, caller: Caller) -> list[tuple[Folder, Access]]:
        found = await self._db(
            folder_ledger.visible, self.ledger, caller.user, caller.groups, caller.admin_of, all_groups=caller.admin
        )
        return [(f, a) for f in found if (a := access(f, caller)) is not None]

    async def _resolve(self, caller: Caller, ref, field: str = "folder") -> tuple[Folder, Access]:
        """The folder ``ref`` names among those the caller may see; 404 for anything else (nothing leaks)."""
        r = parse_reference(ref, field)
        seen = await self._visible(caller)
        if r.id:
            hits = [(f, a) for f, a in seen if f.id == r.id]
        elif r.owner is not None:
            hits = [(f, a) for f, a in seen if (f.owner_kind, f.owner, f.name) == (r.owner_kind, r.owner, r.name)]
        else:
            named = [(f, a) for f, a in seen if f.name == r.name]
            own = [(f, a) for f, a in named if f.owner_kind == "user" and f.owner == caller.user]
            hits = own or named
            if len(hits) > 1:
                raise RequestError(
                    field,
                    f"{ref!r} names {len(hits)} folders you can see: "
                    f"{', '.join(f.reference for f, _ in hits)}; give the qualified name",
                )
        if not hits:
            raise NotFoundError(f"no folder {ref!r} of yours or shared with you")
        return hits[0]

    @staticmethod
    def _must_manage(f: Folder, a: Access, what: str) -> None:
        if not a.manage:
            who = f"its owner {f.owner}" if f.owner_kind == "user" else f"the admins of group {f.owner}'s folders"
            raise PolicyError(
                f"you cannot {what} folder {f.reference}: you have {MODE_WORDS[a.mode]} access as {a.role}; "
                f"only {who} can",
                limit="folder rights",
            )

    # ---- usage and quotas -------------------------------------------------------------------
    async def folder_usage(self, f: Folder, *, fresh: bool = False) -> FolderUsage:
        """Measured size of one folder (cached ``folder_usage_ttl`` seconds; concurrent callers share one walk)."""
        cache = self.__dict__.setdefault("_folder_usage_cache", {})
        hit = cache.get(f.id)
        if hit and not fresh and time.monotonic() - hit[0] < self.folder_usage_ttl:
            usage = hit[1]
        else:
            running = self.__dict__.setdefault("_folder_usage_running", {})
            task = running.get(f.id)
            if task is None:
                task = running[f.id] = asyncio.ensure_future(self._fs(folder_fs.measure, self._path(f)))
                task.add_done_callback(lambda _t, key=f.id: running.pop(key, None))
            usage = await asyncio.shield(task)
            cache[f.id] = (time.monotonic(), usage)
        return FolderUsage(**vars(usage))

    def _forget_usage(self, folder_id: str) -> None:
        self.__dict__.setdefault("_folder_usage_cache", {}).pop(folder_id, None)

    async def owner_usage(self, kind: str, owner: str, *, fresh: bool = False) -> FolderUsage:
        """What all folders of one owner use together (``folders`` = how many)."""
        total = FolderUsage(measured_at=datetime.now(timezone.utc))
        for f in await self._db(folder_ledger.owned_by, self.ledger, kind, owner):
            total.add(await self.folder_usage(f, fresh=fresh))
        return total

    async def owned_folders(self, kind: str | None = None, owner: str | None = None) -> list[Folder]:
        """Every folder, or those of one owner (``kind`` user or group): for admins' tools, no rights applied."""
        return await self._db(folder_ledger.owned_by, self.ledger, kind, owner)

    async def stored_folder_quota(self, kind: str, owner: str) -> dict:
        """The override stored at run time for one owner (``berth folders quota``), ``{}`` if none."""
        return (await self._db(folder_ledger.quota_overrides, self.ledger)).get((kind, owner), {})

    async def folder_quota_for(self, kind: str, owner: str) -> FolderQuota:
        """Configured quota, then the owner's configured override, then one stored at run time (``berth folders quota``)."""
        quota = FolderQuota.parse(self.folder_quota, "folder_quota")
        configured = (self.user_folder_quotas if kind == "user" else self.group_folder_quotas).get(owner)
        quota = FolderQuota.parse(configured, f"{kind}_folder_quotas.{owner}", quota)
        stored = (await self._db(folder_ledger.quota_overrides, self.ledger)).get((kind, owner))
        return FolderQuota.parse(stored, f"stored folder quota of {kind} {owner}", quota) if stored else quota

    async def set_folder_quota(self, kind: str, owner: str, spec: dict | None, *, by: str | None = None) -> FolderQuota:
        """Store an owner's quota override (admins only: front ends check that). ``None`` removes it."""
        check_kind(kind, "kind")
        check_principal(owner, "owner")
        if spec is not None:
            FolderQuota.parse(spec, "quota")
        await self._db(folder_ledger.set_quota_override, self.ledger, kind, owner, spec, by)
        return await self.folder_quota_for(kind, owner)

    async def folder_quotas(self, user: str, groups=(), *, admin: bool = False) -> list[dict]:
        """The caller's own quota and usage, and those of each group whose folders they see or administer."""
        caller = self._caller(user, groups, admin)
        owners = [("user", caller.user)] + [("group", g) for g in sorted(caller.groups | caller.admin_of)]
        out = []
        for kind, owner in owners:
            quota, usage = await self.folder_quota_for(kind, owner), await self.owner_usage(kind, owner)
            if kind == "group" and not usage.folders and not caller.administers(owner):
                continue
            out.append(
                {
                    "owner": {"kind": kind, "name": owner},
                    "quota": quota.to_json(),
                    "usage": usage.to_json(),
                    "over": over_quota(quota, usage),
                    "enforcement": ENFORCEMENT,
                }
            )
        return out

    async def _refuse_over_quota(self, f_kind: str, owner: str, what: str, *, adding_folder: bool = False) -> None:
        quota = await self.folder_quota_for(f_kind, owner)
        usage = await self.owner_usage(f_kind, owner)
        over = over_quota(quota, usage, adding_folder=adding_folder)
        if over:
            raise PolicyError(
                f"{what}: {owner_words(f_kind, owner)} uses {over} (folder quota, measured); delete files or "
                "folders, or ask an admin to raise the quota",
                limit="folder quota",
            )

    # ---- the folder API ---------------------------------------------------------------------
    async def list_folders(self, user: str, groups=(), *, admin: bool = False, usage: bool = True) -> list[FolderView]:
        """Every folder the caller may see, with their right on it (and measured usage)."""
        views = [FolderView(f, a) for f, a in await self._visible(self._caller(user, groups, admin))]
        if usage:
            for v in views:
                v.usage = await self.folder_usage(v.folder)
        return views

    async def get_folder(self, user: str, groups=(), folder: str = "", *, admin: bool = False) -> FolderView:
        f, a = await self._resolve(self._caller(user, groups, admin), folder)
        view = FolderView(f, a, usage=await self.folder_usage(f))
        if a.manage:
            view.mounted_by = await self.folder_mounted_by(f)
        return view

    async def create_folder(
        self,
        user: str,
        groups=(),
        name: str = "",
        *,
        group: str | None = None,
        member_mode: str | None = None,
        admin: bool = False,
    ) -> FolderView:
        """A folder of the caller's own, or with ``group`` a group folder (admins of the group's folders only)."""
        caller = self._caller(user, groups, admin)
        name = check_name(name, "name")
        if group is None:
            kind, owner = "user", caller.user
            if member_mode is not None:
                raise RequestError("member_mode", "only group folders have a member mode; share the folder instead")
        else:
            kind, owner = "group", check_principal(group, "group")
            member_mode = check_mode("ro" if member_mode is None else member_mode, "member_mode")
            if not caller.administers(owner):
                raise PolicyError(
                    f"you cannot create a folder of group {owner}: only hub admins and the admins of its "
                    "folders (FolderManager.folder_admins) can",
                    limit="folder rights",
                )
        quota = await self.folder_quota_for(kind, owner)
        await self._refuse_over_quota(kind, owner, f"cannot create folder {name!r}", adding_folder=True)
        f = await self._db(
            folder_ledger.create,
            self.ledger,
            name=name,
            owner_kind=kind,
            owner=owner,
            member_mode=member_mode,
            created_by=caller.user,
            max_folders=quota.max_folders,
        )
        try:
            await self._fs(folder_fs.make_folder, self._folders_root, self._path(f), self.folder_uid, self.folder_gid)
        except BaseException:
            await self._db(folder_ledger.remove, self.ledger, f.id)
            raise
        self.log.info("Folder %s (%s) created by %s", f.reference, f.id, caller.user)
        return FolderView(f, access(f, caller), usage=await self.folder_usage(f, fresh=True))

    async def update_folder(
        self,
        user: str,
        groups=(),
        folder: str = "",
        *,
        name: str | None = None,
        member_mode: str | None = None,
        admin: bool = False,
    ) -> FolderView:
        """Rename a folder (not while a running kernel mounts it) and/or change a group folder's member mode."""
        caller = self._caller(user, groups, admin)
        f, a = await self._resolve(caller, folder)
        self._must_manage(f, a, "change")
        if name is not None:
            name = check_name(name, "name")
        if member_mode is not None:
            check_mode(member_mode, "member_mode")
            if f.owner_kind != "group":
                raise RequestError("member_mode", "only group folders have a member mode; share the folder instead")
        if name is not None and name != f.name:
            await self._refuse_if_mounted(f, "rename")
        f = await self._db(folder_ledger.update, self.ledger, f.id, name=name, member_mode=member_mode)
        return FolderView(f, access(f, caller), usage=await self.folder_usage(f))

    async def delete_folder(self, user: str, groups=(), folder: str = "", *, admin: bool = False) -> None:
        """Delete a folder and its files (not while a running kernel mounts it). Links inside are never followed."""
        caller = self._caller(user, groups, admin)
        f, a = await self._resolve(caller, folder)
        self._must_manage(f, a, "delete")
        await self._refuse_if_mounted(f, "delete")
        root, path = self._folders_root, self._path(f)
        trashed = await self._fs(folder_fs.trash_folder, root, path)
        try:
            await self._db(folder_ledger.remove, self.ledger, f.id)
        except BaseException:
            if trashed:
                await self._fs(os.rename, trashed, path)
            raise
        self._forget_usage(f.id)
        self.log.info("Folder %s (%s) deleted by %s", f.reference, f.id, caller.user)
        if trashed and not await self._fs(folder_fs.remove_trashed, trashed):
            self.log.warning("Folder %s: some files were left in %s", f.reference, trashed)
        elif await self._fs(folder_fs.purge_trash, root):  # retry what earlier deletions left behind
            self.log.warning(
                "Some deleted folders could not be removed completely from %s", os.path.join(root, folder_fs.TRASH)
            )

    async def share_folder(
        self,
        user: str,
        groups=(),
        folder: str = "",
        *,
        kind: str = "user",
        name: str = "",
        mode: str = "ro",
        admin: bool = False,
    ) -> Share:
        """Give a user, or every member of a group, ``ro`` or ``rw`` access (managers only)."""
        caller = self._caller(user, groups, admin)
        check_kind(kind, "kind")
        check_principal(name, "name")
        check_mode(mode, "mode")
        f, a = await self._resolve(caller, folder)
        self._must_manage(f, a, "share")
        if kind == "user" and name == caller.user:
            raise RequestError(
                "name",
                f"you cannot share folder {f.reference} with yourself; you have {MODE_WORDS[a.mode]} access already",
            )
        if (kind, name) == (f.owner_kind, f.owner):
            hint = "its owner has read-write access" if kind == "user" else "set the folder's member_mode instead"
            raise RequestError("name", f"{owner_words(kind, name)} owns folder {f.reference}; {hint}")
        await principals.require(self._principal_directory(), kind, name)
        share = await self._db(folder_ledger.set_share, self.ledger, f.id, kind, name, mode, caller.user)
        self.log.info("Folder %s shared %s with %s %s by %s", f.reference, mode, kind, name, caller.user)
        return share

    async def folder_shares(self, user: str, groups=(), folder: str = "", *, admin: bool = False) -> list[Share]:
        """Who a folder is shared with (managers only)."""
        f, a = await self._resolve(self._caller(user, groups, admin), folder)
        self._must_manage(f, a, "list the shares of")
        return list(f.shares)

    async def unshare_folder(
        self, user: str, groups=(), folder: str = "", *, kind: str = "user", name: str = "", admin: bool = False
    ) -> None:
        """Remove a share (managers; a user may also drop a share made to them)."""
        caller = self._caller(user, groups, admin)
        check_kind(kind, "kind")
        check_principal(name, "name")
        f, a = await self._resolve(caller, folder)
        if not (kind == "user" and name == caller.user):
            self._must_manage(f, a, "unshare")
        if not await self._db(folder_ledger.remove_share, self.ledger, f.id, kind, name):
            raise NotFoundError(f"folder {f.reference} is not shared with {owner_words(kind, name)}")

    # ---- mounts ------------------------------------------------------------------------------
    async def folder_mounts(self, user: str, groups=(), names=()) -> list[Mount]:
        """Mounts for the folders a kernel (or server) asked for, at ``/home/jovyan/folders/<name>``.

        Refuses (404) a folder the user may not see, (400) a malformed name or two folders with
        one name, (403) a read-write mount while the folder's owner is at or over quota.
        """
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise RequestError("folders", "expected a list of folder names")
        caller = self._caller(user, groups)
        chosen: dict[str, tuple[Folder, Access]] = {}
        for ref in dict.fromkeys(names):
            f, a = await self._resolve(caller, ref, "folders")
            other = chosen.get(f.name)
            if other and other[0].id != f.id:
                raise RequestError(
                    "folders",
                    f"{other[0].reference} and {f.reference} would both be mounted at {f.mount_path}; pick one",
                )
            chosen[f.name] = (f, a)
        mounts = []
        for f, a in chosen.values():
            if a.mode == "rw":
                await self._refuse_over_quota(
                    f.owner_kind, f.owner, f"folder {f.reference} cannot be mounted read-write"
                )
            source = await self._fs(
                folder_fs.mount_source, self._folders_root, self._path(f), self.folder_uid, self.folder_gid
            )
            mounts.append(Mount(source=source, target=f"{FOLDERS_ROOT}/{f.name}", read_only=a.mode != "rw"))
        return mounts

    async def folder_mounted_by(self, f: Folder) -> list[str]:
        """Running containers that mount the folder, in words (``kernel K of alice``); asks the engine."""
        if self.runtime is None or not self.runtime.has_docker_api:
            return []  # a runtime without bind mounts (or none yet) mounts nothing
        path = self._path(f)
        sources = {path, os.path.realpath(path)}
        found = []
        # a warm-pool kernel got its folders by mount hand-over: not in its Mounts, but under the hand-over root
        handed = set(await self._fs(mount_handover.holders, os.path.join(self.data_dir, "handover"), path))
        for c in await self.runtime.docker("containers", all=False):
            mounts = c.get("Mounts") or ()
            if parse_labels(c.get("Labels") or {}).get("subject") in handed:
                found.append(f"a kernel in container {(c.get('Names') or ['?'])[0].lstrip('/')}")
                continue
            if not any(m.get("Type") == "bind" and m.get("Source") in sources for m in mounts):
                continue
            labels = parse_labels(c.get("Labels") or {})
            if labels.get("subject"):
                found.append(f"{labels.get('kind', 'container')} {labels['subject']} of {labels.get('owner', '?')}")
            else:
                found.append(f"container {(c.get('Names') or ['?'])[0].lstrip('/')}")
        return found

    async def _refuse_if_mounted(self, f: Folder, what: str) -> None:
        users = await self.folder_mounted_by(f)
        if users:
            raise ConflictError(
                f"cannot {what} folder {f.reference}: it is mounted by {', '.join(users)}; shut "
                f"{'it' if len(users) == 1 else 'them'} down first"
            )


__all__ = ["ENFORCEMENT", "FolderManager"]
