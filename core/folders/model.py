"""Virtual folders: names, references, rights and quotas (pure functions, no I/O).

A folder belongs to a user or to a group and lives on the host under
``<data_dir>/folders/<owner kind>/<owner>/<id>`` (see :mod:`.fs`); kernels see
it at ``/home/jovyan/folders/<name>``. The host path is always computed from the
ledger's id and owner, never from anything a user typed.

Who may do what (see ``docs/folders.md``):

* a **user folder**: its owner has read-write access and manages it (rename, delete,
  share, unshare);
* a **group folder**: members of the group get the folder's ``member_mode`` (``ro``
  or ``rw``); the group's *folder admins* (hub admins, and the users or ``@groups``
  listed for the group in ``FolderManager.folder_admins``) have read-write access and
  manage it;
* a **share** gives a user, or every member of a group, ``ro`` or ``rw`` access. Only
  managers share, so nobody can raise their own right.

A user's right is the best of everything that applies. A folder none of them applies
to does not exist for that user: it is answered with "not found" (HTTP 404), not
"forbidden", so that the names of other people's folders do not leak.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import RequestError
from ..kernel_launch import FOLDERS_ROOT
from ..resources import format_bytes, parse_memory

#: Longest folder name.
NAME_MAX = 64
#: Longest user or group name accepted as owner or grantee.
PRINCIPAL_MAX = 255
NAME_FORM = (
    f"1 to {NAME_MAX} characters: letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "without '..' (e.g. course-materials)"
)
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
#: Folder ids are 32 lowercase hex digits (uuid4().hex).
ID_RE = re.compile(r"[0-9a-f]{32}")
MODES = ("ro", "rw")
OWNER_KINDS = ("user", "group")
MODE_WORDS = {"ro": "read-only", "rw": "read-write"}


def check_name(value: Any, field: str = "name") -> str:
    """A folder name, or :class:`RequestError` naming ``field`` and the accepted form."""
    if not isinstance(value, str):
        raise RequestError(field, f"expected a folder name: {NAME_FORM}")
    if not value:
        raise RequestError(field, f"a folder needs a name: {NAME_FORM}")
    if len(value) > NAME_MAX:
        raise RequestError(field, f"{value[:NAME_MAX]!r}… is {len(value)} characters long; expected {NAME_FORM}")
    if "/" in value or "\\" in value:
        raise RequestError(field, f"{value!r} contains a slash; expected {NAME_FORM}")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise RequestError(field, f"{value!r} contains control characters; expected {NAME_FORM}")
    if ".." in value:
        raise RequestError(field, f"{value!r} contains '..'; expected {NAME_FORM}")
    if not _NAME_RE.fullmatch(value):
        raise RequestError(field, f"{value!r} is not a folder name; expected {NAME_FORM}")
    return value


def check_principal(value: Any, field: str) -> str:
    """A user or group name (as the hub spells it): no slash, no control characters, ≤ 255 characters."""
    if not isinstance(value, str) or not value.strip():
        raise RequestError(field, "expected a user or group name")
    if (
        len(value) > PRINCIPAL_MAX
        or "/" in value
        or value in (".", "..")
        or any(unicodedata.category(ch) == "Cc" for ch in value)
    ):
        raise RequestError(
            field,
            f"{value[:40]!r} is not a user or group name (no slashes or control characters, "
            f"at most {PRINCIPAL_MAX} characters)",
        )
    return value


def check_mode(value: Any, field: str = "mode") -> str:
    if value not in MODES:
        raise RequestError(field, f"{value!r} is not an access mode; expected 'ro' (read-only) or 'rw' (read-write)")
    return value


def check_kind(value: Any, field: str = "kind") -> str:
    if value not in OWNER_KINDS:
        raise RequestError(field, f"{value!r} is not a kind; expected 'user' or 'group'")
    return value


REFERENCE_FORM = (
    "a folder name (data), a qualified name (alice/data for a user's folder, @class1/course-materials "
    "for a group's) or a folder id"
)


@dataclass(frozen=True)
class Reference:
    """A parsed folder reference: ``id``, or ``name`` with an optional owner."""

    id: str | None = None
    name: str | None = None
    owner_kind: str | None = None
    owner: str | None = None


def parse_reference(value: Any, field: str = "folder") -> Reference:
    """``data``, ``alice/data``, ``@class1/data`` or a 32-hex-digit id; anything else is a :class:`RequestError`."""
    if not isinstance(value, str) or not value:
        raise RequestError(field, f"expected {REFERENCE_FORM}")
    if ID_RE.fullmatch(value):
        return Reference(id=value)
    if value.count("/") == 1:
        owner, name = value.split("/")
        kind = "group" if owner.startswith("@") else "user"
        owner = owner[1:] if kind == "group" else owner
        return Reference(name=check_name(name, field), owner_kind=kind, owner=check_principal(owner, field))
    return Reference(name=check_name(value, field))


def best_mode(*modes: str | None) -> str | None:
    """``rw`` beats ``ro`` beats nothing."""
    found = [m for m in modes if m]
    return "rw" if "rw" in found else ("ro" if found else None)


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """A grant of ``mode`` on a folder to a user or to every member of a group."""

    folder_id: str
    kind: str  #: ``user`` or ``group``
    name: str
    mode: str
    created_at: datetime | None = None
    created_by: str | None = None

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "name": self.name,
            "mode": self.mode,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Folder:
    """A folder as the ledger holds it, with its shares."""

    id: str
    name: str
    owner_kind: str
    owner: str
    member_mode: str | None
    created_at: datetime
    created_by: str | None = None
    shares: tuple[Share, ...] = ()

    @property
    def reference(self) -> str:
        """Unambiguous reference: ``alice/data`` or ``@class1/course-materials``."""
        return f"{'@' if self.owner_kind == 'group' else ''}{self.owner}/{self.name}"

    @property
    def mount_path(self) -> str:
        return f"{FOLDERS_ROOT}/{self.name}"


@dataclass(frozen=True)
class Caller:
    """Who asks: a user, their groups, whether they are a hub admin, and the groups whose folders they administer."""

    user: str
    groups: frozenset[str] = frozenset()
    admin: bool = False
    admin_of: frozenset[str] = frozenset()

    @classmethod
    def make(
        cls,
        user: str,
        groups: Iterable[str] = (),
        *,
        admin: bool = False,
        folder_admins: Mapping[str, Iterable[str]] | None = None,
    ) -> Caller:
        groups = frozenset(groups or ())
        admin_of = frozenset(
            g
            for g, who in (folder_admins or {}).items()
            if user in who or any(w.startswith("@") and w[1:] in groups for w in who)
        )
        return cls(user=user, groups=groups, admin=admin, admin_of=admin_of)

    def administers(self, group: str) -> bool:
        return self.admin or group in self.admin_of


@dataclass(frozen=True)
class Access:
    """What a caller may do with one folder: ``mode`` (``ro``/``rw``), ``role`` and whether they manage it."""

    mode: str
    role: str  #: ``owner``, ``admin``, ``member`` or ``shared``
    manage: bool


def access(folder: Folder, caller: Caller) -> Access | None:
    """The caller's best right on ``folder``, or ``None`` when the folder is not theirs to see."""
    candidates: list[tuple[str, str]] = []
    manage = False
    if folder.owner_kind == "user" and folder.owner == caller.user:
        candidates.append(("rw", "owner"))
        manage = True
    if folder.owner_kind == "group":
        if caller.administers(folder.owner):
            candidates.append(("rw", "admin"))
            manage = True
        elif folder.owner in caller.groups:
            candidates.append((folder.member_mode or "ro", "member"))
    for s in folder.shares:
        if (s.kind == "user" and s.name == caller.user) or (s.kind == "group" and s.name in caller.groups):
            candidates.append((s.mode, "shared"))
    if not candidates:
        return None
    mode = best_mode(*(m for m, _ in candidates))
    role = next(r for m, r in candidates if m == mode)
    return Access(mode=mode, role=role, manage=manage)


# -- quotas ----------------------------------------------------------------------------

QUOTA_FIELDS = {
    "max_bytes": "disk space of all the owner's folders together, e.g. '10G' (binary units) or a number of bytes",
    "max_folders": "how many folders the owner may have (a whole number)",
    "max_files": "files, directories and links in all the owner's folders together (a whole number)",
}


@dataclass(frozen=True)
class FolderQuota:
    """Limits per owner (a user, or a group for its group folders); ``None`` is unlimited."""

    max_bytes: int | None = None
    max_folders: int | None = None
    max_files: int | None = None

    @classmethod
    def parse(
        cls, spec: Mapping[str, Any] | None, where: str = "folder_quota", base: FolderQuota | None = None
    ) -> FolderQuota:
        """Fields of ``spec`` replace those of ``base``; ``null`` means unlimited."""
        values = dict(vars(base)) if base else {}
        if spec is None:
            return cls(**values)
        if not isinstance(spec, Mapping):
            raise RequestError(where, f"expected an object with some of {', '.join(QUOTA_FIELDS)}")
        for key, value in spec.items():
            if key not in QUOTA_FIELDS:
                raise RequestError(f"{where}.{key}", f"unknown quota field; expected one of {', '.join(QUOTA_FIELDS)}")
            if value is None:
                values[key] = None
            elif key == "max_bytes":
                values[key] = parse_memory(value, f"{where}.{key}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RequestError(f"{where}.{key}", f"{value!r} is not a limit; expected {QUOTA_FIELDS[key]}")
            else:
                values[key] = value
        return cls(**values)

    def to_json(self) -> dict:
        return {"max_bytes": self.max_bytes, "max_folders": self.max_folders, "max_files": self.max_files}


@dataclass
class FolderUsage:
    """What folders use on disk: allocated bytes (like ``du``), entries, and how many folders."""

    bytes: int = 0
    files: int = 0
    folders: int = 0
    partial: bool = False  #: some entries could not be read or were nested too deep to measure
    measured_at: datetime | None = None

    def add(self, other: FolderUsage) -> None:
        self.bytes += other.bytes
        self.files += other.files
        self.folders += other.folders
        self.partial = self.partial or other.partial
        if other.measured_at and (self.measured_at is None or other.measured_at < self.measured_at):
            self.measured_at = other.measured_at

    def to_json(self) -> dict:
        return {
            "bytes": self.bytes,
            "files": self.files,
            "folders": self.folders,
            "partial": self.partial,
            "measured_at": self.measured_at.isoformat() if self.measured_at else None,
        }


def owner_words(kind: str, name: str) -> str:
    return f"user {name}" if kind == "user" else f"group {name}"


def over_quota(quota: FolderQuota, usage: FolderUsage, *, adding_folder: bool = False) -> str | None:
    """Which limit ``usage`` is at or over (in words), or ``None``. ``adding_folder`` checks room for one more."""
    if adding_folder and quota.max_folders is not None and usage.folders + 1 > quota.max_folders:
        return f"{usage.folders} of at most {quota.max_folders} folders"
    if quota.max_bytes is not None and usage.bytes >= quota.max_bytes:
        return f"{format_bytes(usage.bytes)} of {format_bytes(quota.max_bytes)} of disk space"
    if quota.max_files is not None and usage.files >= quota.max_files:
        return f"{usage.files} of at most {quota.max_files} files"
    return None


@dataclass
class FolderView:
    """One folder as a caller sees it (what the REST API returns)."""

    folder: Folder
    access: Access
    usage: FolderUsage | None = None
    mounted_by: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        f, a = self.folder, self.access
        data = {
            "id": f.id,
            "name": f.name,
            "reference": f.reference,
            "owner": {"kind": f.owner_kind, "name": f.owner},
            "mode": a.mode,
            "role": a.role,
            "can_manage": a.manage,
            "member_mode": f.member_mode,
            "mount_path": f.mount_path,
            "created_at": f.created_at.isoformat(),
            "created_by": f.created_by,
            "usage": self.usage.to_json() if self.usage else None,
        }
        if a.manage:
            data["shares"] = [s.to_json() for s in f.shares]
        return data


__all__ = [
    "Access",
    "Caller",
    "Folder",
    "FolderQuota",
    "FolderUsage",
    "FolderView",
    "ID_RE",
    "MODES",
    "NAME_FORM",
    "NAME_MAX",
    "Reference",
    "Share",
    "access",
    "best_mode",
    "check_kind",
    "check_mode",
    "check_name",
    "check_principal",
    "over_quota",
    "owner_words",
    "parse_reference",
]
