"""Mount hand-over: a running container gets its user's files, by mount propagation.

The engine cannot add a mount to a running container. A container started ahead of its
user (a warm-pool kernel, a pooled server) therefore gets, for each place its user's files
will appear (a *target*: the work directory, ``/home/jovyan/folders``), a bind mount of an
empty per-container host directory (a *slot*) with ``rslave`` propagation. When the
container is handed to its user, the service bind-mounts the user's volume and folders
onto (or under) those slots on the host; the mounts propagate into the running container
at once. Releasing unmounts them on the host, which propagates too.

Layout, under one site's root ``<base>/<site>`` (a bind mount of itself, made a shared mount
with a peer group of its own, so mounts under it reach only the containers' slave copies)::

    <base>/<site>/<container name>/0   → target 0 inside the container (rslave)
    <base>/<site>/<container name>/1   → target 1 ...
    <base>/.stage-<site>/              private: where read-only mounts are made read-only first

A read-only mount is bound and remounted read-only in the private stage, then bound into its
slot: the copy keeps the read-only flag, so it is read-only inside from the first instant
(a remount is not propagated, a new mount is). A container sees only the slots it was
given, so it sees its own user's files and nobody else's.

API (all blocking, fast syscalls; call them off the event loop)::

    h = MountHandover(base, site)        # h.unavailable(): why hand-over cannot work here, or None
    h.setup()                            # idempotent: the site root, shared; the stage, private
    mounts = h.slots(name, targets)      # Mounts (propagation="rslave") for the container's spec
    h.plan(targets, user_mounts)         # None if every mount fits a slot, else why not
    h.hand_over(name, targets, user_mounts)   # host paths only (resolve named volumes first)
    h.release(name)                      # unmount everything of that container, remove its slots
    h.clean(keep)                        # after a restart: release every container not in keep
    h.teardown()                         # a stopping service: undo setup() if no container has slots
    h.mounted(name)                      # mount points still under that container's slots
    holders(base, path)                  # which containers (any site under base) were handed ``path``

Needs: ``CAP_SYS_ADMIN`` in the engine's mount namespace (the service runs as root on the
engine's host, as here), and the engine on the same host and mount namespace. A service that
runs as another user cannot mount: it would need a small privileged helper (a setuid binary
or a root-run socket service that does exactly ``hand_over`` and ``release`` for paths under
its base, checking that sources are volumes and folders of that site), or ``CAP_SYS_ADMIN``
given to the service. Without it :meth:`unavailable` says so and the pool keeps to requests
whose mounts it was configured with (see :mod:`.warm_pool`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
import shutil

from ..errors import BerthError
from ..runtime.base import Mount

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE, MS_SHARED = 1, 32, 4096, 16384, 1 << 18, 1 << 20
MNT_DETACH = 2

_libc = None


def _sys_mount(source: str | None, target: str, flags: int) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    src = source.encode() if source is not None else None
    if _libc.mount(src, target.encode(), None, ctypes.c_ulong(flags), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source or ''} {target}: {os.strerror(err)}")


def _sys_umount(target: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not (or no longer) a mount point
            raise OSError(err, f"umount {target}: {os.strerror(err)}")


def _mountinfo() -> list[tuple[str, str]]:
    """``(mount point, optional fields)`` of every mount in this namespace, in mount order."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left = line.split(" - ", 1)[0].split()
            point = left[4].replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")
            out.append((point, " ".join(left[6:])))
    return out


def holders(base: str, path: str) -> list[str]:
    """Containers (by slot directory name), of any site under ``base``, that were handed the directory
    ``path`` (the same directory: device and inode), e.g. a folder someone wants to delete."""
    try:
        want = os.stat(path)
    except OSError:
        return []
    prefix = os.path.abspath(base) + "/"
    out = []
    for point, _ in _mountinfo():
        parts = point[len(prefix) :].split("/") if point.startswith(prefix) else []
        if len(parts) < 3 or parts[0].startswith(".") or parts[1] in out:
            continue
        try:
            st = os.stat(point)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (want.st_dev, want.st_ino):
            out.append(parts[1])
    return out


class HandoverError(BerthError):
    """A mount could not be handed over (the caller starts the container cold instead)."""


class MountHandover:
    """Per-container slots under ``<base>/<site>`` and the user's mounts bound into them (module doc)."""

    def __init__(self, base: str, site: str):
        self.base = os.path.abspath(base)
        self.site = site
        self.root = os.path.join(self.base, site)
        self.stage = os.path.join(self.base, f".stage-{site}")

    # -- set-up ---------------------------------------------------------------------------
    @staticmethod
    def unavailable() -> str | None:
        """Why mounts cannot be handed over here (``None``: they can)."""
        if not os.path.exists("/proc/self/mountinfo"):
            return "this system has no Linux mount namespaces"
        if os.geteuid() != 0:
            return "the service does not run as root (mounting needs CAP_SYS_ADMIN; see docs/warm-pool.md)"
        return None

    def setup(self) -> None:
        """Make the site root a shared mount (a peer group of its own) and the stage a private one."""
        os.makedirs(self.root, mode=0o755, exist_ok=True)
        os.makedirs(self.stage, mode=0o700, exist_ok=True)
        info = dict(_mountinfo())
        if self.stage not in info:
            _sys_mount(self.stage, self.stage, MS_BIND)
            _sys_mount(None, self.stage, MS_PRIVATE)
        if "shared:" not in info.get(self.root, ""):  # (a restart keeps the root and its containers' slaves)
            if self.root not in info:
                _sys_mount(self.root, self.root, MS_BIND)
            _sys_mount(None, self.root, MS_PRIVATE)  # leave any peer group the parent mount had
            _sys_mount(None, self.root, MS_SHARED)

    # -- a container's slots ----------------------------------------------------------------
    def _dir(self, name: str) -> str:
        if not name or "/" in name or name.startswith("."):
            raise HandoverError(f"{name!r} is not a container name for mount hand-over")
        return os.path.join(self.root, name)

    def slots(self, name: str, targets) -> list[Mount]:
        """Create the container's empty slots; the mounts (rslave) its spec must carry. A root that is no
        longer a shared mount (someone unmounted it) is set up again first."""
        if "shared:" not in dict(_mountinfo()).get(self.root, ""):
            self.setup()
        d = self._dir(name)
        os.makedirs(d, mode=0o755, exist_ok=True)
        mounts = []
        for i, target in enumerate(targets):
            os.makedirs(os.path.join(d, str(i)), mode=0o755, exist_ok=True)
            mounts.append(Mount(source=os.path.join(d, str(i)), target=target, propagation="rslave"))
        return mounts

    @staticmethod
    def _place(targets, mount: Mount) -> tuple[int, str] | None:
        """``(slot index, path under the slot)`` where ``mount`` goes; ``None`` if no slot holds it."""
        for i, t in enumerate(targets):
            if mount.target.rstrip("/") == t.rstrip("/"):
                return i, ""
        for i, t in enumerate(targets):
            rel = os.path.relpath(mount.target, t)
            if not rel.startswith("..") and os.path.normpath(mount.target) == mount.target.rstrip("/"):
                return i, rel
        return None

    @classmethod
    def plan(cls, targets, mounts) -> str | None:
        """Why these mounts cannot be handed over into slots at ``targets`` (``None``: they can)."""
        whole = set()
        placed = []
        for m in mounts:
            where = cls._place(targets, m)
            if where is None:
                return f"mount target {m.target} is not at or under {', '.join(targets) or 'any hand-over target'}"
            (whole.add(where[0]) if not where[1] else placed.append(where))
        if any(i in whole for i, _ in placed):  # never make mount points inside a user's own files
            return "a mount inside another mount cannot be handed over"
        return None

    def hand_over(self, name: str, targets, mounts, pid: int | None = None) -> None:
        """Bind each mount (host paths) into the container's slots; read-only ones read-only.

        ``pid``: the container's main process; each mount is then checked to have arrived inside (the same
        directory, by device and inode, through ``/proc/<pid>/root``). On any failure, what was mounted is
        released and :class:`HandoverError` says why.
        """
        reason = self.plan(targets, mounts)
        if reason:
            raise HandoverError(reason)
        d = self._dir(name)
        try:
            for m in mounts:
                if not m.source.startswith("/") or not os.path.isdir(m.source):
                    raise HandoverError(f"{m.source} is not a directory on this host")
                i, rel = self._place(targets, m)
                dest = os.path.join(d, str(i))
                for part in [p for p in rel.split("/") if p]:  # our own, root-owned directories
                    dest = os.path.join(dest, part)
                    if os.path.islink(dest):
                        raise HandoverError(f"{dest} is a symbolic link")
                    os.makedirs(dest, mode=0o755, exist_ok=True)
                if m.read_only:
                    stage = os.path.join(self.stage, secrets.token_hex(6))
                    os.mkdir(stage, 0o700)
                    try:
                        _sys_mount(m.source, stage, MS_BIND)
                        try:
                            _sys_mount(None, stage, MS_REMOUNT | MS_BIND | MS_RDONLY)
                            _sys_mount(stage, dest, MS_BIND)  # the copy is read-only from the start
                        finally:
                            _sys_umount(stage)
                    finally:
                        os.rmdir(stage)
                else:
                    _sys_mount(m.source, dest, MS_BIND | MS_REC)
            if pid is not None:
                for m in mounts:
                    want, seen = os.stat(m.source), os.stat(f"/proc/{pid}/root{m.target}")
                    if (want.st_dev, want.st_ino) != (seen.st_dev, seen.st_ino):
                        raise HandoverError(f"{m.target} did not arrive in the container (its slot lost propagation)")
        except (OSError, HandoverError) as e:
            self.release(name, remove=False)
            if isinstance(e, HandoverError):
                raise
            raise HandoverError(f"mount hand-over into {name} failed: {e}") from e

    # -- release ----------------------------------------------------------------------------
    def mounted(self, name: str) -> list[str]:
        """Mount points still at or under the container's slots (deepest last)."""
        d = self._dir(name) + "/"
        return [p for p, _ in _mountinfo() if p.startswith(d)]

    def release(self, name: str, remove: bool = True) -> None:
        """Unmount everything handed to the container (the unmounts propagate), then remove its slots."""
        for point in reversed(self.mounted(name)):
            _sys_umount(point)
        if remove:
            d = self._dir(name)
            left = self.mounted(name)
            if left:
                raise HandoverError(f"{d} still has mounts after release: {', '.join(left)}")
            shutil.rmtree(d, ignore_errors=True)

    def teardown(self) -> bool:
        """Undo :meth:`setup` if no container has slots left (a stopping service); ``True`` if undone."""
        if self.names():
            return False
        points = [p for p, _ in _mountinfo()]
        for path in (self.root, self.stage):
            if path in points:
                _sys_umount(path)
            shutil.rmtree(path, ignore_errors=True)
        return True

    def names(self) -> list[str]:
        """Containers of this site that have slots."""
        try:
            return sorted(n for n in os.listdir(self.root) if not n.startswith("."))
        except FileNotFoundError:
            return []

    def clean(self, keep) -> list[str]:
        """Release every container of this site not in ``keep`` (after a restart); the names released.
        One that cannot be released is left for the next try; the first error is raised after the others."""
        gone, failed = [], None
        for n in [n for n in self.names() if n not in set(keep)]:
            try:
                self.release(n)
                gone.append(n)
            except (OSError, HandoverError) as e:
                failed = failed or e
        if failed is not None:
            raise failed
        return gone


__all__ = ["HandoverError", "MountHandover", "holders"]
