"""The IPython startup file that applies framework GPU memory caps inside a kernel.

:func:`jupyter_berth.gpu.enforcement.plan` sets ``BERTH_TORCH_MEMORY_FRACTION``
and ``BERTH_TF_MEMORY_LIMIT_MB`` for a fractional grant; neither framework reads
them by itself. This file (installed as ``00-berth-gpu-caps.py``) does:

* when PyTorch is imported, it queues
  ``torch.cuda.set_per_process_memory_fraction(fraction, device)`` for every
  visible device with ``torch.cuda._lazy_call`` (PyTorch's own hook, which its
  seeding uses too), so the cap is applied when PyTorch first starts CUDA in
  that process, not at ``import torch``: setting the fraction itself starts
  CUDA (it calls ``torch.cuda._lazy_init``), and starting CUDA at import would
  make every torch kernel a CUDA (and, under MPS, an MPS) client and break
  forked children (PyTorch refuses CUDA in a process forked after CUDA
  started). A PyTorch without ``_lazy_call`` gets the cap at import;
* when TensorFlow is imported, it gives every visible GPU one logical device
  with ``memory_limit`` = the limit in MiB;
* at kernel start (environment only, nothing imported), it turns
  ``BERTH_JAX_MEMORY_FRACTION`` into exactly one of JAX's fraction variables:
  ``XLA_CLIENT_MEM_FRACTION`` when the image set that name (the deprecated
  ``XLA_PYTHON_CLIENT_MEM_FRACTION`` is then removed, since current jaxlib refuses
  both), else ``XLA_PYTHON_CLIENT_MEM_FRACTION``. Processes the kernel starts
  inherit the result.

It installs the caps right after the user's ``import torch`` / ``import
tensorflow`` (a post-import hook), not at kernel start: importing either
framework takes seconds and creating a CUDA context takes device memory, costs
a kernel that never touches them should not pay. TensorFlow's logical-device
setting must be made before TensorFlow initialises its GPUs, so it stays at
import (whether listing the physical GPUs touches the driver was not checked);
PyTorch's cap waits for PyTorch's first CUDA use. When neither framework is
installed, the file only looks for them (``importlib.util.find_spec``) and
returns. It never stops a kernel from starting: failures become a warning.

Ways to run it in a kernel (the runtime picks one):

* copy it into the image at ``$IPYTHONDIR/profile_default/startup/`` (default
  ``~/.ipython/profile_default/startup/``), or
* mount it read-only (for instance at :data:`CONTAINER_PATH`) and start the
  kernel with ``--InteractiveShellApp.exec_files=["<that path>"]``.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

#: Name of the startup file (IPython runs startup files in name order).
STARTUP_FILENAME = "00-berth-gpu-caps.py"
#: A suggested read-only mount point inside kernel containers.
CONTAINER_PATH = "/opt/berth/gpu/" + STARTUP_FILENAME
#: IPython's startup directory for HOME=/home/jovyan (IPYTHONDIR defaults to $HOME/.ipython).
DEFAULT_STARTUP_DIR = "/home/jovyan/.ipython/profile_default/startup"


def check_startup_dir(path: str) -> str:
    """Refuse a startup directory that is not an absolute container path; return it normalised."""
    if not isinstance(path, str) or not path.startswith("/"):
        from ..errors import RequestError

        raise RequestError(
            "gpu_caps_startup_dir",
            f"{path!r} must be an absolute path inside the container, such as {DEFAULT_STARTUP_DIR}",
        )
    return posixpath.normpath(path)


def startup_mount_target(startup_dir: str) -> str:
    """Where the caps file is mounted for an IPython startup directory."""
    return posixpath.join(check_startup_dir(startup_dir), STARTUP_FILENAME)


STARTUP_CAPS_SOURCE = r'''"""jupyter-berth: apply this kernel's GPU memory cap to PyTorch and TensorFlow.

Written by jupyter-berth (jupyter_berth.gpu.startup_caps). The cap comes from
BERTH_TORCH_MEMORY_FRACTION / BERTH_TF_MEMORY_LIMIT_MB, set when the kernel was
granted a fraction of a GPU. It is applied when the framework is imported. The
cap is cooperative: code in this kernel can change it, but then it competes
with other kernels on the same GPU.
"""


def _berth_gpu_caps():
    import importlib.util
    import os
    import sys
    import warnings

    jax_fraction = os.environ.get("BERTH_JAX_MEMORY_FRACTION")
    if jax_fraction:  # never both names: current jaxlib refuses to start its GPU client then
        if "XLA_CLIENT_MEM_FRACTION" in os.environ:
            os.environ["XLA_CLIENT_MEM_FRACTION"] = jax_fraction
            os.environ.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
        else:
            os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = jax_fraction

    def warn(what, error):
        warnings.warn(f"jupyter-berth could not apply the {what} GPU memory cap: {error}", RuntimeWarning, stacklevel=2)

    def cap_torch(torch):
        fraction = float(os.environ["BERTH_TORCH_MEMORY_FRACTION"])
        cuda = torch.cuda

        def apply():
            try:
                for device in range(cuda.device_count()):
                    cuda.set_per_process_memory_fraction(fraction, device)
            except Exception as error:  # raised inside torch's CUDA start it would fail the user's call
                warn("PyTorch", error)

        # set_per_process_memory_fraction starts CUDA (it calls torch.cuda._lazy_init): at import
        # that would make every torch kernel a CUDA (and MPS) client and trip PyTorch's rule
        # against CUDA in forked children. torch.cuda._lazy_call queues the cap to run inside
        # PyTorch's own CUDA start (or at once if CUDA already started).
        lazy_call = getattr(cuda, "_lazy_call", None)
        if callable(lazy_call):
            lazy_call(apply)
        elif cuda.is_available():  # a PyTorch without the hook: the cap at import, as before
            apply()

    def cap_tensorflow(tf):
        limit_mb = int(os.environ["BERTH_TF_MEMORY_LIMIT_MB"])
        for gpu in tf.config.list_physical_devices("GPU"):
            tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=limit_mb)])

    hooks = {}
    try:
        if os.environ.get("BERTH_TORCH_MEMORY_FRACTION") and importlib.util.find_spec("torch") is not None:
            hooks["torch"] = ("PyTorch", cap_torch)
        if os.environ.get("BERTH_TF_MEMORY_LIMIT_MB") and importlib.util.find_spec("tensorflow") is not None:
            hooks["tensorflow"] = ("TensorFlow", cap_tensorflow)
    except Exception as error:  # a broken install must not stop the kernel
        warn("framework", error)
        return
    if not hooks:
        return

    def apply(name, module):
        what, cap = hooks.pop(name)
        try:
            cap(module)
        except Exception as error:
            warn(what, error)

    for name in list(hooks):  # already imported (e.g. by another startup file)
        if name in sys.modules:
            apply(name, sys.modules[name])

    class CapsLoader:
        """Wraps the framework's loader once: runs it, then applies the cap."""

        def __init__(self, name, real):
            self.name, self.real = name, real

        def create_module(self, spec):
            return self.real.create_module(spec)

        def exec_module(self, module):
            module.__loader__ = self.real  # leave no trace of the wrapper
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self.real
            self.real.exec_module(module)
            apply(self.name, module)

        def __getattr__(self, attribute):
            return getattr(self.real, attribute)

    class CapsFinder:
        """A meta-path finder that only intercepts the top-level framework imports."""

        def find_spec(self, name, path=None, target=None):
            if name not in hooks:
                return None
            for finder in sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    break
            else:
                return None
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = CapsLoader(name, spec.loader)
            return spec

        def invalidate_caches(self):
            pass

    if hooks:
        sys.meta_path.insert(0, CapsFinder())


try:
    _berth_gpu_caps()
except Exception as _berth_error:  # never crash the kernel start
    import warnings as _berth_warnings

    _berth_warnings.warn(f"jupyter-berth GPU caps were not installed: {_berth_error}", RuntimeWarning)
    del _berth_warnings, _berth_error
del _berth_gpu_caps
'''


def write_startup_file(directory: str | os.PathLike) -> Path:
    """Write :data:`STARTUP_CAPS_SOURCE` as ``directory/00-berth-gpu-caps.py`` (atomically, mode 0644)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / STARTUP_FILENAME
    temporary = directory / f".{STARTUP_FILENAME}.{os.getpid()}.tmp"
    temporary.write_text(STARTUP_CAPS_SOURCE, encoding="utf-8")
    temporary.chmod(0o644)
    os.replace(temporary, target)
    return target
