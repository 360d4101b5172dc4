"""Folders on the host: where they live, creating, measuring and deleting them without following links.

Layout: ``<data_dir>/folders/<owner kind>/<owner>/<id>`` (the owner percent-encoded so
that any user or group name is one safe path component), and ``<data_dir>/folders/.trash``
for folders being deleted. Paths are always computed from a ledger id; every path is
checked to resolve inside the folders root before it is used.

What users put inside a folder is not trusted: a kernel may plant symlinks pointing
anywhere (``ln -s /etc x``), or swap a directory for a link while the service works.
Nothing here follows a link inside a folder: measuring walks with directory file
descriptors opened ``O_NOFOLLOW`` (race-free, like ``du -x -P``), and deleting uses
:func:`shutil.rmtree`, which on Linux works on file descriptors and removes links,
never their targets. Every function here blocks: call it from a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import uuid
from datetime import datetime, timezone
from urllib.parse import quote

from ..errors import BerthError
from .model import ID_RE, OWNER_KINDS, FolderUsage

log = logging.getLogger(__name__)

TRASH = ".trash"
#: Directories nested deeper than this are not measured (the usage is then marked partial).
MAX_DEPTH = 200
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FolderStorageError(BerthError):
    """The folder's directory on the host is missing, not a directory, or outside the folders root."""

    status = 500


def owner_component(owner: str) -> str:
    """A user or group name as one path component (percent-encoded; ``.``/``..`` escaped)."""
    encoded = quote(owner, safe="@+-_")
    return encoded.replace(".", "%2E") if encoded in (".", "..") or encoded.startswith(".") else encoded


def folder_path(root: str, owner_kind: str, owner: str, folder_id: str) -> str:
    """The host directory of a folder, from its ledger id and owner only."""
    if owner_kind not in OWNER_KINDS or not ID_RE.fullmatch(folder_id or ""):
        raise FolderStorageError(f"not a folder of the ledger: {owner_kind}/{owner}/{folder_id}")
    path = os.path.join(os.path.abspath(root), owner_kind, owner_component(owner), folder_id)
    check_contained(root, path)
    return path


def check_contained(root: str, path: str) -> None:
    """Refuse a path that does not resolve (links followed) to somewhere strictly inside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if not real.startswith(real_root.rstrip("/") + "/"):
        raise FolderStorageError(
            f"the folder directory {path} resolves to {real}, outside the folders root {real_root}; refusing to use it",
            log_message=f"folder path escape: {path} -> {real}",
        )


def _ensure_dir(path: str, mode: int) -> None:
    """Create a service-owned directory, or check that what is there is a real directory (not a link)."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise FolderStorageError(
            f"{path} should be a directory of the Berth service but is not (a link or a file); remove it and try again"
        )


def ensure_root(root: str) -> None:
    """The folders root and its ``.trash``: private to the service (0711 as root, 0700 otherwise)."""
    os.makedirs(os.path.dirname(os.path.abspath(root)), exist_ok=True)
    mode = 0o711 if os.geteuid() == 0 else 0o700
    _ensure_dir(root, mode)
    os.chmod(root, mode)
    _ensure_dir(os.path.join(root, TRASH), 0o700)


def make_folder(root: str, path: str, uid: int, gid: int) -> None:
    """Create a folder's directory (and its owner directory), writable by the kernel user ``uid``.

    As root the directory is owned by ``uid:gid``, mode 0770. Run as another user, the
    service cannot give it away, so it is made 0777 inside the private (0700) folders root.
    """
    ensure_root(root)
    check_contained(root, path)
    parent_mode = 0o711 if os.geteuid() == 0 else 0o700
    _ensure_dir(os.path.dirname(os.path.dirname(path)), parent_mode)  # <root>/<kind>
    _ensure_dir(os.path.dirname(path), parent_mode)  # <root>/<kind>/<owner>
    _ensure_dir(path, 0o700)
    if os.geteuid() == 0:
        os.chown(path, uid, gid, follow_symlinks=False)
        os.chmod(path, 0o770)
    elif os.geteuid() != uid:
        os.chmod(path, 0o777)
    else:
        os.chmod(path, 0o770)


def mount_source(root: str, path: str, uid: int, gid: int) -> str:
    """The folder's directory, checked to be a real directory inside the root; re-created (empty) if it vanished."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        log.warning("Folder directory %s is missing; creating it empty", path)
        make_folder(root, path, uid, gid)
        st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise FolderStorageError(
            f"the folder directory {path} is not a directory (a link or a file); an admin must "
            "look at it before it can be mounted"
        )
    check_contained(root, path)
    return path


def measure(path: str, max_depth: int = MAX_DEPTH) -> FolderUsage:
    """Disk usage of a folder (allocated blocks, like ``du``; hard links counted once) and its entries.

    Never follows a symbolic link, never crosses into another filesystem, and is immune
    to a directory being swapped for a link while it runs (each level is opened
    relative to its parent with ``O_NOFOLLOW``).
    """
    usage = FolderUsage(folders=1, measured_at=datetime.now(timezone.utc))
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return usage
    except OSError as e:
        log.warning("Cannot measure folder %s: %s", path, e)
        usage.partial = True
        return usage
    top_st = os.fstat(top)
    usage.bytes += top_st.st_blocks * 512
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[int, list, int]] = []

    def push(fd: int, depth: int) -> None:
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as e:
            log.debug("Cannot list a directory under %s: %s", path, e)
            usage.partial = True
            entries = []
        stack.append((fd, entries, depth))

    push(top, 0)
    try:
        while stack:
            fd, entries, depth = stack[-1]
            if not entries:
                os.close(fd)
                stack.pop()
                continue
            entry = entries.pop()
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                usage.partial = True
                continue
            if st.st_dev != top_st.st_dev:
                continue  # another filesystem mounted inside: not this folder's space
            if stat.S_ISDIR(st.st_mode):
                usage.bytes += st.st_blocks * 512
                usage.files += 1
                if depth + 1 > max_depth:
                    usage.partial = True
                    continue
                try:
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except OSError:  # swapped for a link or removed since listed
                    usage.partial = True
                    continue
                cst = os.fstat(child)
                if (cst.st_dev, cst.st_ino) != (st.st_dev, st.st_ino):
                    os.close(child)
                    usage.partial = True
                    continue
                push(child, depth + 1)
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            usage.bytes += st.st_blocks * 512
            usage.files += 1
    finally:
        for fd, _, _ in stack:
            os.close(fd)
    return usage


def trash_folder(root: str, path: str) -> str | None:
    """Move a folder's directory into ``<root>/.trash`` (atomic: it is gone from its place at once).

    Returns where it went (``None`` if it did not exist). Refuses a path that is a link
    or a file, or resolves outside the root. Remove it with :func:`remove_trashed`.
    """
    if not shutil.rmtree.avoids_symlink_attacks:  # pragma: no cover - Linux has it
        raise FolderStorageError("this platform cannot delete a folder without following symbolic links; not deleting")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise FolderStorageError(
            f"the folder directory {path} is not a directory (a link or a file); not deleting through it"
        )
    check_contained(root, path)
    ensure_root(root)
    trashed = os.path.join(root, TRASH, f"{os.path.basename(path)}-{uuid.uuid4().hex[:8]}")
    os.rename(path, trashed)
    return trashed


def remove_trashed(path: str) -> bool:
    """Remove a trashed folder and everything in it; links inside are removed, never followed.

    Returns ``False`` when something could not be removed (left in the trash and logged;
    :func:`purge_trash` retries).
    """
    failures: list[str] = []

    def failed(func, p, exc):
        failures.append(f"{p}: {exc[1] if isinstance(exc, tuple) else exc}")

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(path, onexc=failed)
        else:
            shutil.rmtree(path, onerror=failed)
    except RecursionError:  # nested deeper than Python's recursion limit
        failures.append(f"{path}: nested too deeply")
    if failures:
        log.error("Could not delete all of %s (left in the trash): %s", path, "; ".join(failures[:5]))
    return not failures


def purge_trash(root: str) -> int:
    """Retry removing what earlier deletions left in the trash; returns how many entries remain."""
    trash = os.path.join(root, TRASH)
    try:
        names = os.listdir(trash)
    except FileNotFoundError:
        return 0
    left = 0
    for name in names:
        p = os.path.join(trash, name)
        if os.path.islink(p) or not os.path.isdir(p):
            os.unlink(p)
        elif not remove_trashed(p):
            left += 1
    return left
