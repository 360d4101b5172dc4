pytest_plugins = ["tests.db_fixtures", "tests.berth_fixtures", "pytest_jupyter.jupyter_server"]

import os
import uuid


def pytest_sessionstart(session):
    """In CI, a missing engine or image is a failure, not a reason to skip tests."""
    if not os.environ.get("CI"):
        return
    from jupyter_berth.engine import engine_client
    from jupyter_berth.imagebuild.bootstrap import DEFAULT_KERNEL_IMAGE

    client = engine_client()  # raises EngineError with the fix when nothing answers
    client.images.get(DEFAULT_KERNEL_IMAGE)  # raises ImageNotFound: run `berth images bootstrap`


_egress_chains_before: set[str] = set()

#: This run's label on everything Berth creates during it (core/runtime/labels.py EXTRA_LABELS_ENV),
#: inherited by the hubs and servers the tests start: the run removes exactly what carries it.
SESSION_LABEL = ("io.jupyter.berth.test_session", uuid.uuid4().hex[:12])


def _egress():
    import shutil

    if os.geteuid() != 0 or not shutil.which("iptables"):
        return None
    from jupyter_berth.runtime.egress import EgressPolicy

    return EgressPolicy()


def pytest_configure(config):
    """Remember the Berth egress chains that exist before the run (a live hub's: never touched)."""
    extra = os.environ.get("BERTH_EXTRA_LABELS", "")
    os.environ["BERTH_EXTRA_LABELS"] = ",".join(filter(None, [extra, f"test_session={SESSION_LABEL[1]}"]))
    egress = _egress()
    if egress is not None:
        _egress_chains_before.update(egress.berth_chains())


def _remove_session_objects() -> None:
    """Containers, then networks, then volumes carrying this run's label: removed; nothing else."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception:  # no engine: nothing was made on one
        return
    wanted = {"label": "=".join(SESSION_LABEL)}
    left = []
    for kind, remove in (
        (client.containers, lambda c: c.remove(force=True, v=True)),
        (client.networks, lambda n: n.remove()),
        (client.volumes, lambda v: v.remove(force=True)),
    ):
        listed = kind.list(all=True, filters=wanted) if kind is client.containers else kind.list(filters=wanted)
        for obj in listed:
            try:
                remove(obj)
            except Exception as e:
                left.append(f"{obj.name}: {e}")
    if left:
        print(f"\nleft behind by test session {SESSION_LABEL[1]}:", *left, sep="\n  ")


def _unmount_test_handover_roots(config) -> None:
    """Mount hand-over roots the test services left (a service stopped with kernels still adopted keeps
    its root mounted, as a live one must): unmounted when they lie in THIS session's temporary directory
    (never another session's, running beside it: its pools' containers would lose their hand-over)."""
    import ctypes

    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or os.geteuid() != 0 or not os.path.exists("/proc/self/mountinfo"):
        return
    basetemp = getattr(factory, "_basetemp", None)  # None: this run made no temporary directory
    if basetemp is None:
        return
    prefix = str(basetemp) + "/"
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    for point in reversed(points):
        if point.startswith(prefix) and "/handover/" in point:
            libc.umount2(point.encode(), 2)  # MNT_DETACH


def pytest_unconfigure(config):
    """What this run made on the engine: removed (by its label); then the test sites' egress chains
    whose networks are gone (core/runtime/egress.py sweep)."""
    _remove_session_objects()
    _unmount_test_handover_roots(config)
    egress = _egress()
    if egress is not None:
        egress.sweep(keep=_egress_chains_before)
