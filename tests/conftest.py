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
