"""``berth folders``: an admin's commands for virtual folders (group folders for a class, quotas).

The command acts as a hub admin: it may create, share and delete any group's folders
and set anyone's quota. Users' private folders are theirs (create them from JupyterLab);
``list`` shows every folder's owner and size so an admin can see who uses what.

    berth folders create course-materials --group=class1 --member-mode=ro
    berth folders share @class1/course-materials --group=class1-teachers --mode=rw
    berth folders quota --group=class1 --max-bytes=50G
    berth folders list
"""

from __future__ import annotations

import asyncio
import getpass

from traitlets import Bool, Integer, Unicode
from traitlets.config import Application

from ..errors import RequestError
from ..resources import format_bytes
from ..service import BerthService
from .command import BerthCommand

ADMIN = "berth-cli"
_COMMON = {"data-dir": "BerthService.data_dir", "db-url": "BerthService.db_url"}


class FolderCommand(BerthCommand):
    """Shared options: which ledger (the deployment's config, or ``--data-dir``, ``--db-url``)."""

    classes = [BerthService]
    user = Unicode("", config=True, help="Act on this user's folder or quota.")
    group = Unicode("", config=True, help="Act on this group's folder or quota.")
    aliases = {**_COMMON, "user": "FolderCommand.user", "group": "FolderCommand.group"}

    def owner(self, required: bool = True) -> tuple[str, str] | None:
        if bool(self.user) == bool(self.group):
            if not required and not self.user:
                return None
            raise RequestError("--user/--group", "name exactly one of --user=NAME or --group=NAME")
        return ("user", self.user) if self.user else ("group", self.group)

    def run(self, work):
        async def go():
            service = BerthService(parent=self)
            await service.open()
            try:
                return await work(service)
            finally:
                await service.close()

        return asyncio.run(go())

    def admin(self) -> dict:
        return {"user": getpass.getuser() or ADMIN, "groups": (), "admin": True}

    def reference(self) -> str:
        if len(self.extra_args) != 1:
            raise RequestError("folder", "name one folder, e.g. @class1/course-materials")
        return self.extra_args[0]


class FoldersListApp(FolderCommand):
    name = "berth folders list"
    description = "Every folder (or one owner's with --user/--group): owner, name, member mode, shares, size."

    def start(self):
        owner = self.owner(required=False)

        async def work(service):
            found = await service.folders.owned_folders(*(owner or (None, None)))
            return [(f, await service.folders.folder_usage(f)) for f in found]

        for f, usage in self.run(work):
            shares = ", ".join(f"{s.kind} {s.name} {s.mode}" for s in f.shares) or "not shared"
            members = f" members {f.member_mode}" if f.owner_kind == "group" else ""
            print(f"{f.reference:40} {f.id}  {format_bytes(usage.bytes):>10} {usage.files:>8} files{members}; {shares}")


class FoldersCreateApp(FolderCommand):
    name = "berth folders create"
    description = "Create a group folder: berth folders create NAME --group=GROUP [--member-mode=ro|rw]."
    member_mode = Unicode("ro", config=True, help="What the group's members get: ro (read-only) or rw (read-write).")
    aliases = {**FolderCommand.aliases, "member-mode": "FoldersCreateApp.member_mode"}

    def start(self):
        if not self.group or self.user:
            raise RequestError(
                "--group", "berth folders create makes group folders; users create their own in JupyterLab"
            )
        view = self.run(
            lambda s: s.folders.create_folder(
                **self.admin(), name=self.reference(), group=self.group, member_mode=self.member_mode
            )
        )
        print(f"created {view.folder.reference} ({view.folder.id}); members get {view.folder.member_mode}")


class FoldersShareApp(FolderCommand):
    name = "berth folders share"
    description = "Share a group folder: berth folders share @GROUP/NAME --user=U|--group=G --mode=ro|rw (or --remove)."
    mode = Unicode("ro", config=True, help="ro or rw.")
    remove = Bool(False, config=True, help="Remove the share instead.")
    aliases = {**FolderCommand.aliases, "mode": "FoldersShareApp.mode"}
    flags = {"remove": ({"FoldersShareApp": {"remove": True}}, "Remove the share.")}

    def start(self):
        kind, name = self.owner()
        if self.remove:
            self.run(lambda s: s.folders.unshare_folder(**self.admin(), folder=self.reference(), kind=kind, name=name))
            print(f"{self.reference()}: no longer shared with {kind} {name}")
            return
        share = self.run(
            lambda s: s.folders.share_folder(
                **self.admin(), folder=self.reference(), kind=kind, name=name, mode=self.mode
            )
        )
        print(f"{self.reference()}: shared {share.mode} with {kind} {name}")


class FoldersDeleteApp(FolderCommand):
    name = "berth folders delete"
    description = "Delete a group folder and its files (refused while a running kernel mounts it)."

    def start(self):
        from ..runtime.docker import DockerRuntime

        async def work(service):
            service.runtime = DockerRuntime()
            await service.folders.delete_folder(**self.admin(), folder=self.reference())

        self.run(work)
        print(f"deleted {self.reference()}")


class FoldersQuotaApp(FolderCommand):
    name = "berth folders quota"
    description = "Show or set one owner's folder quota (--max-bytes=50G --max-folders=N --max-files=N, or --clear)."
    max_bytes = Unicode("", config=True, help="Disk space of all the owner's folders, e.g. 50G.")
    max_folders = Integer(-1, config=True, help="How many folders the owner may have.")
    max_files = Integer(-1, config=True, help="Files in all the owner's folders.")
    clear = Bool(False, config=True, help="Remove the stored override (back to the configured quota).")
    aliases = {
        **FolderCommand.aliases,
        "max-bytes": "FoldersQuotaApp.max_bytes",
        "max-folders": "FoldersQuotaApp.max_folders",
        "max-files": "FoldersQuotaApp.max_files",
    }
    flags = {"clear": ({"FoldersQuotaApp": {"clear": True}}, "Remove the stored override.")}

    def start(self):
        kind, owner = self.owner()
        spec = {
            k: v
            for k, v in (
                ("max_bytes", self.max_bytes or None),
                ("max_folders", self.max_folders),
                ("max_files", self.max_files),
            )
            if v not in (None, -1)
        }

        async def work(service):
            if self.clear or spec:
                stored = await service.folders.stored_folder_quota(kind, owner)
                await service.folders.set_folder_quota(
                    kind, owner, None if self.clear else {**stored, **spec}, by=self.admin()["user"]
                )
            return await service.folders.folder_quota_for(kind, owner), await service.folders.owner_usage(kind, owner)

        quota, usage = self.run(work)
        limit = lambda v, f=str: "unlimited" if v is None else f(v)  # noqa: E731
        print(
            f"{kind} {owner}: {format_bytes(usage.bytes)} of {limit(quota.max_bytes, format_bytes)}, "
            f"{usage.folders} of {limit(quota.max_folders)} folders, {usage.files} of {limit(quota.max_files)} files "
            "(measured, soft)"
        )


class FoldersApp(Application):
    name = "berth folders"
    description = "Virtual folders: group folders for classes and teams, quotas (docs/folders.md)."
    subcommands = {
        app.name.split()[-1]: (app, app.description)
        for app in (FoldersListApp, FoldersCreateApp, FoldersShareApp, FoldersDeleteApp, FoldersQuotaApp)
    }

    def start(self):
        if self.subapp is None:
            self.print_help()
            self.exit(1)
        return self.subapp.start()
