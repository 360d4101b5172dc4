"""``folders``: the caller's virtual folders, their shares and quotas (``docs/folders.md``).

Thin: every rule lives in the service (``FoldersMixin``). Identity is the server's user
(standalone) or the token's (hub mode), never the request body. A folder the caller may
not see answers 404, like one that does not exist.
"""

from __future__ import annotations

from jupyter_berth.errors import RequestError

from .base import BerthHandler, authorized, web

_ID = r"(?P<folder_id>[0-9a-f]{32})"


class FolderBase(BerthHandler):
    def identity(self) -> dict:
        return {
            "user": self.berth.user,
            "groups": tuple(self.berth.groups),
            "admin": bool(self.berth.extra.get("admin")),
        }

    def body_with(self, allowed: set[str], what: str) -> dict:
        body = self.json_object()
        unknown = set(body) - allowed
        if unknown:
            raise RequestError(sorted(unknown)[0], f"unknown field; {what} takes {', '.join(sorted(allowed))}")
        return body


class FoldersHandler(FolderBase):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        views = await service.folders.list_folders(**self.identity())
        self.write_json({"folders": [v.to_json() for v in views]})

    @web.authenticated
    @authorized
    async def post(self):
        body = self.body_with({"name", "group", "member_mode"}, "a new folder")
        if "name" not in body:
            raise RequestError("name", "a new folder needs a name")
        service = await self.berth.service()
        view = await service.folders.create_folder(
            **self.identity(), name=body["name"], group=body.get("group"), member_mode=body.get("member_mode")
        )
        self.write_json(view.to_json(), status=201)


class QuotaHandler(FolderBase):
    @web.authenticated
    @authorized
    async def get(self):
        service = await self.berth.service()
        self.write_json({"quotas": await service.folders.folder_quotas(**self.identity())})


class FolderHandler(FolderBase):
    @web.authenticated
    @authorized
    async def get(self, folder_id):
        service = await self.berth.service()
        view = await service.folders.get_folder(**self.identity(), folder=folder_id)
        self.write_json({**view.to_json(), "mounted_by": view.mounted_by})

    @web.authenticated
    @authorized
    async def patch(self, folder_id):
        body = self.body_with({"name", "member_mode"}, "a folder change")
        service = await self.berth.service()
        view = await service.folders.update_folder(
            **self.identity(), folder=folder_id, name=body.get("name"), member_mode=body.get("member_mode")
        )
        self.write_json(view.to_json())

    @web.authenticated
    @authorized
    async def delete(self, folder_id):
        service = await self.berth.service()
        await service.folders.delete_folder(**self.identity(), folder=folder_id)
        self.set_status(204)
        self.finish()


class SharesHandler(FolderBase):
    @web.authenticated
    @authorized
    async def get(self, folder_id):
        service = await self.berth.service()
        shares = await service.folders.folder_shares(**self.identity(), folder=folder_id)
        self.write_json({"shares": [s.to_json() for s in shares]})


class ShareHandler(FolderBase):
    @web.authenticated
    @authorized
    async def put(self, folder_id, kind, name):
        body = self.body_with({"mode"}, "a share")
        service = await self.berth.service()
        share = await service.folders.share_folder(
            **self.identity(), folder=folder_id, kind=kind, name=name, mode=body.get("mode", "ro")
        )
        self.write_json(share.to_json())

    @web.authenticated
    @authorized
    async def delete(self, folder_id, kind, name):
        service = await self.berth.service()
        await service.folders.unshare_folder(**self.identity(), folder=folder_id, kind=kind, name=name)
        self.set_status(204)
        self.finish()


ROUTES = [
    (r"/berth/api/folders", FoldersHandler),
    (r"/berth/api/folders/quota", QuotaHandler),
    (rf"/berth/api/folders/{_ID}", FolderHandler),
    (rf"/berth/api/folders/{_ID}/shares", SharesHandler),
    (rf"/berth/api/folders/{_ID}/shares/(?P<kind>user|group)/(?P<name>[^/]+)", ShareHandler),
]
