pytest_plugins = ["tests.db_fixtures", "tests.berth_fixtures", "pytest_jupyter.jupyter_server"]

import os


def pytest_sessionstart(session):
    """In CI, a missing engine or image is a failure, not a reason to skip tests."""
    if not os.environ.get("CI"):
        return
    from jupyter_berth.engine import engine_client
    from jupyter_berth.imagebuild.bootstrap import DEFAULT_KERNEL_IMAGE

    client = engine_client()  # raises EngineError with the fix when nothing answers
    client.images.get(DEFAULT_KERNEL_IMAGE)  # raises ImageNotFound: run `berth images bootstrap`


_egress_chains_before: set[str] = set()


def _egress():
    import shutil

    if os.geteuid() != 0 or not shutil.which("iptables"):
        return None
    from jupyter_berth.runtime.egress import EgressPolicy

    return EgressPolicy()


def pytest_configure(config):
    """Remember the Berth egress chains that exist before the run (a live hub's: never touched)."""
    egress = _egress()
    if egress is not None:
        _egress_chains_before.update(egress.berth_chains())


def pytest_unconfigure(config):
    """The test sites' egress chains whose networks are gone: removed (core/runtime/egress.py sweep)."""
    egress = _egress()
    if egress is not None:
        egress.sweep(keep=_egress_chains_before)
