"""``berth develop``: the development install's missing step (``pip install -e .`` installs no data files).

A wheel puts two data files into the environment: the server extension's auto-enable file
(``etc/jupyter/jupyter_server_config.d/jupyter_berth.json``) and the built JupyterLab extension
(``share/jupyter/labextensions/jupyter-berth``). An editable install puts neither, so the
``berth/api`` routes answer 404 and Lab shows no sidebar. This command does what the JupyterLab
extension template's ``jupyter labextension develop . --overwrite`` and ``jupyter server extension
enable`` do, for this checkout: it builds the lab extension when it is not built, links the build
into the environment (so a rebuild shows at the next page load) and writes the enable file.

    pip install -e '.[lab]'
    berth develop              # once; again with --overwrite to replace a copy from a wheel
    berth develop --uninstall  # take both out again
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from traitlets import Bool, Unicode

from ..errors import BerthError
from .command import BerthCommand

LAB_NAME = "jupyter-berth"
ENABLE_FILE = Path("jupyter-config", "jupyter_server_config.d", "jupyter_berth.json")


def checkout_root() -> Path:
    """The source checkout this ``jupyter_berth`` is imported from (an editable install), or a BerthError."""
    import jupyter_berth

    package = Path(jupyter_berth.__file__).resolve().parent
    root = package.parent
    if package.name != "core" or not (root / "setup.cfg").exists() or not (root / ENABLE_FILE).exists():
        raise BerthError(
            f"berth develop links a source checkout installed with `pip install -e .`; jupyter_berth is imported "
            f"from {package}, an installed package whose wheel already enabled the extensions"
        )
    return root


class DevelopApp(BerthCommand):
    name = "berth develop"
    description = (
        "For an editable install (pip install -e .): build the JupyterLab extension if needed, link it into the "
        "environment and enable the server extension (what a wheel's data files do)."
    )
    examples = """pip install -e '.[lab]' && berth develop
berth develop --overwrite   # replace a copy an earlier wheel install left
berth develop --uninstall"""
    prefix = Unicode(
        "", config=True, help="The environment to install into (default: this Python's sys.prefix, the virtualenv)."
    )
    overwrite = Bool(False, config=True, help="Replace an existing copy of the lab extension (not only a link).")
    uninstall = Bool(False, config=True, help="Remove the link and the enable file instead.")
    build = Bool(
        True, config=True, help="Build the lab extension (scripts/build-labextension.sh) when it is not built."
    )
    aliases = {"prefix": "DevelopApp.prefix"}
    flags = {
        "overwrite": ({"DevelopApp": {"overwrite": True}}, "Replace an existing copy of the lab extension."),
        "uninstall": ({"DevelopApp": {"uninstall": True}}, "Remove the link and the enable file."),
        "no-build": ({"DevelopApp": {"build": False}}, "Never run the lab extension's build."),
    }

    def targets(self) -> tuple[Path, Path]:
        prefix = Path(self.prefix or sys.prefix)
        return (
            prefix / "share" / "jupyter" / "labextensions" / LAB_NAME,
            prefix / "etc" / "jupyter" / "jupyter_server_config.d" / ENABLE_FILE.name,
        )

    def built_extension(self, root: Path) -> Path:
        built = root / "core" / "labextension"
        if (built / "package.json").exists():
            return built
        if not self.build:
            raise BerthError(f"the lab extension is not built ({built}); run scripts/build-labextension.sh")
        print("berth develop: building the lab extension (scripts/build-labextension.sh)", flush=True)
        env = {**os.environ, "BERTH_NO_LABEXTENSION_LINK": "1"}
        env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])  # this env's jlpm
        done = subprocess.run(["bash", str(root / "scripts" / "build-labextension.sh")], env=env)
        if done.returncode != 0 or not (built / "package.json").exists():
            raise BerthError("building the lab extension failed (see above); Node.js >= 20 is needed")
        return built

    def start(self):
        root = checkout_root()
        lab, enable = self.targets()
        if self.uninstall:
            for path in (lab, enable):
                if path.is_symlink() or path.is_file():
                    path.unlink()
                    print(f"removed {path}")
            return
        built = self.built_extension(root)
        if lab.is_symlink() or lab.is_file():
            lab.unlink()
        elif lab.exists():
            if not self.overwrite:
                raise BerthError(f"{lab} is a copy (from a wheel install?); re-run with --overwrite to replace it")
            shutil.rmtree(lab)
        lab.parent.mkdir(parents=True, exist_ok=True)
        lab.symlink_to(built, target_is_directory=True)
        print(f"lab extension: linked {lab} -> {built}")
        enable.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / ENABLE_FILE, enable)
        print(f"server extension: enabled jupyter_berth.server ({enable})")
        print("check with `jupyter server extension list` and `jupyter labextension list`")
