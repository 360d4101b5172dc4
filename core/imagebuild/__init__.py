"""Kernel images built without a registry: see :mod:`.bootstrap` and :mod:`.baseimage`.

``DEFAULT_KERNEL_IMAGE`` (``"berth/python:3.11"``) is the image kernels run
when nothing else is asked for; ``berth images bootstrap`` builds it.
"""

from .bootstrap import DEFAULT_KERNEL_IMAGE, ImageResult, bootstrap_image

__all__ = ["DEFAULT_KERNEL_IMAGE", "ImageResult", "bootstrap_image"]
