import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
LABEXTENSION = os.path.join("core", "labextension")  #: built by scripts/build-labextension.sh
LABEXTENSION_DEST = "share/jupyter/labextensions/jupyter-berth"


def labextension_data_files() -> list[tuple[str, list[str]]]:
    """The built extension as data files: {prefix}/share/jupyter/labextensions/jupyter-berth/…"""
    by_dir: dict[str, list[str]] = {}
    for path in sorted(glob.glob(os.path.join(LABEXTENSION, "**", "*"), recursive=True)):
        if os.path.isfile(path):
            rel = os.path.relpath(os.path.dirname(path), LABEXTENSION)
            by_dir.setdefault(os.path.normpath(os.path.join(LABEXTENSION_DEST, rel)), []).append(path)
    return sorted(by_dir.items())


class BuildPyWithLabextension(build_py):
    """Build the JupyterLab extension (labextension/ → core/labextension) and ship it.

    From a source checkout with Node.js, scripts/build-labextension.sh runs (fast when the
    sources are unchanged); from an sdist, the prebuilt extension it carries is used. The
    build goes into the package (jupyter_berth/labextension, package_data) and into the
    wheel's data files (share/jupyter/labextensions/jupyter-berth), where JupyterLab finds
    it. An editable install skips this: run the script, which also links the build into
    JupyterLab. BERTH_SKIP_LABEXTENSION_BUILD=1 skips the build step.
    """

    def run(self):
        editable = getattr(self, "editable_mode", False)
        source = os.path.exists(os.path.join(HERE, "labextension", "package.json"))
        built = os.path.join(HERE, LABEXTENSION, "package.json")
        # An unpacked sdist (it has PKG-INFO) carries the extension built: use it as it is.
        from_sdist = os.path.exists(os.path.join(HERE, "PKG-INFO")) and os.path.exists(built)
        if source and not from_sdist and not editable and not os.environ.get("BERTH_SKIP_LABEXTENSION_BUILD"):
            if shutil.which("node"):
                # Out of pip's isolated build environment: the script uses the tools (jlpm) installed outside it.
                env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONNOUSERSITE", "PYTHONHOME")}
                env["BERTH_NO_LABEXTENSION_LINK"] = "1"
                subprocess.run(["bash", os.path.join(HERE, "scripts", "build-labextension.sh")], check=True, env=env)
            elif not os.path.exists(built):
                raise RuntimeError(
                    "The JupyterLab extension is not built and Node.js (>= 20) is not installed: install "
                    "Node.js and run scripts/build-labextension.sh, then build the package again."
                )
        if not editable:
            if not os.path.exists(built):
                raise RuntimeError("core/labextension is missing: run scripts/build-labextension.sh first.")
            data_files = [
                entry for entry in (self.distribution.data_files or []) if not entry[0].startswith(LABEXTENSION_DEST)
            ]
            self.distribution.data_files = data_files + labextension_data_files()
        super().run()


setup(cmdclass={"build_py": BuildPyWithLabextension})
