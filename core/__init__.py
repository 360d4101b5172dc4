"""jupyter-berth: every Jupyter kernel in its own quota-bounded container.

This package (the ``core/`` folder) holds the domain and nothing framework-bound:
resource requests, policies, the ledger, admission, runtimes, images. The web
front ends live in ``jupyter_berth.server`` (jupyter_server) and
``jupyter_berth.hub`` (JupyterHub); the kernel provisioner in
``jupyter_berth.kernels``.
"""

from ._version import __version__

__all__ = ["__version__"]
