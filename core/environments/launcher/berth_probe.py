"""berth_probe: what one Python interpreter of an image offers Jupyter (run by berth-discover).

Prints one JSON line: the interpreter, its version and prefix, whether ipykernel imports, and the
versions of the frameworks Berth lists in its catalog. Works on Python 3.6 and later, with no
third-party package (importlib.metadata when there is one, else the packages' own __version__).
"""

import json
import os
import sys

FRAMEWORKS = (
    "ipykernel",
    "bash_kernel",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "matplotlib",
    "jax",
    "jaxlib",
    "torch",
    "tensorflow",
)


def _version(dist):
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return None


def _kernelspecs():
    """kernel.json files under this interpreter's prefix and Jupyter's data paths, when it knows them."""
    dirs = [os.path.join(sys.prefix, "share", "jupyter")]
    try:
        from jupyter_core.paths import jupyter_path

        dirs += jupyter_path()
    except Exception:
        pass
    found = []
    for d in dirs:
        kernels = os.path.join(d, "kernels")
        try:
            names = sorted(os.listdir(kernels))
        except OSError:
            continue
        for name in names:
            path = os.path.join(kernels, name, "kernel.json")
            try:
                with open(path) as f:
                    found.append({"path": path, "spec": json.load(f)})
            except (OSError, ValueError):
                continue
    return found


def main():
    versions = {}
    for dist in FRAMEWORKS:
        v = _version(dist)
        if v:
            versions[dist] = v
    if "ipykernel" not in versions:
        try:
            import ipykernel

            versions["ipykernel"] = getattr(ipykernel, "__version__", "?")
        except Exception:
            pass
    print(
        json.dumps(
            {
                "executable": sys.executable,
                "realpath": os.path.realpath(sys.executable),
                "prefix": sys.prefix,
                "version": ".".join(str(n) for n in sys.version_info[:3]),
                "packages": versions,
                "kernelspecs": _kernelspecs(),
            }
        )
    )


main()
