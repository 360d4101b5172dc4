"""The pure parts of environments, without an engine: what berth-discover prints becomes kernels with
resolved commands, the launcher script (run by a real POSIX shell), container specs and kernelspecs."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest

from jupyter_berth.environments import launch
from jupyter_berth.environments.inspection import LAUNCHER_DIR
from jupyter_berth.environments.model import (
    LAUNCHER_TARGET,
    ImageEnvironment,
    build_environment,
    kernels_from_labels,
    parse_discovery,
)
from jupyter_berth.images.catalog import ImageInfo
from jupyter_berth.kernelspecs import kernelspec_for, kernelspec_for_answer, plan
from jupyter_berth.resources import Preset, Resources
from jupyter_berth.runtime.base import ContainerSpec

PY = {
    "executable": "/opt/env/bin/python3",
    "realpath": "/usr/bin/python3.11",
    "prefix": "/opt/env",
    "version": "3.11.2",
    "packages": {"ipykernel": "7.4.0", "numpy": "2.2.6", "bash_kernel": "0.10.0"},
    "kernelspecs": [],
}
IPY_SPEC = {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "language": "python"}
DISCOVERED = f"""@@user 1000
@@kernelspec /opt/env/share/jupyter/kernels/python3/kernel.json
{json.dumps(IPY_SPEC, indent=1)}
@@end
@@kernelspec /usr/share/jupyter/kernels/ir/kernel.json
{{"argv": ["R", "--slave", "-e", "IRkernel::main()", "--args", "{{connection_file}}"], "display_name": "R", "language": "R"}}
@@end
@@kernelspec /opt/env/share/jupyter/kernels/bash/kernel.json
{{"argv": ["/opt/env/bin/python3", "-m", "bash_kernel", "-f", "{{connection_file}}"], "language": "bash", "env": {{"PS1": "$"}}}}
@@end
@@kernelspec /usr/local/share/jupyter/kernels/python3/kernel.json
{{"argv": ["python3", "-c", "shadowed"], "language": "python"}}
@@end
@@kernelspec /broken/kernel.json
{{not json
@@end
@@which python3 /opt/env/bin/python3
@@which R /usr/bin/R
@@python /opt/env/bin/python3
{json.dumps(PY)}
@@r
4.2.2
1.3.2
@@bash 5.2.15(1)-release
@@done
"""


def test_discovery_resolves_each_kernel_as_jupyter_client_would():
    found = parse_discovery(DISCOVERED)
    assert found.complete and found.user == "1000" and found.which["R"] == "/usr/bin/R"
    env = build_environment("sha256:" + "a" * 64, found, image_user="")
    by_name = {k.name: k for k in env.kernels}
    assert list(by_name) == ["python3", "ir", "bash"]  # the first python3 of Jupyter's path order wins
    py = by_name["python3"]
    assert py.argv[0] == "/opt/env/bin/python3"  # "python" is the interpreter that has ipykernel
    assert (py.language_version, py.frameworks) == ("3.11.2", {"numpy": "2.2.6"})
    assert py.resource_dir == "/opt/env/share/jupyter/kernels/python3"
    r = by_name["ir"]
    assert (r.argv[0], r.language, r.language_version, r.frameworks) == ("R", "R", "4.2.2", {"IRkernel": "1.3.2"})
    bash = by_name["bash"]
    assert bash.language_version.startswith("5.2") and bash.frameworks == {"bash_kernel": "0.10.0"}
    assert bash.env == {"PS1": "$"}
    assert env.kernel().name == "python3" and env.kernel("ir") is r and env.kernel("julia") is None
    again = ImageEnvironment.from_json(json.loads(json.dumps(env.to_json())))
    assert again == env
    labels = env.catalog_labels()
    assert labels["kind"] == "kernel" and labels["language"] == "python" and labels["languages"] == "R,bash,python"
    assert [k["name"] for k in kernels_from_labels(labels)] == ["python3", "ir", "bash"]


def test_a_python_with_ipykernel_but_no_kernelspec_gets_the_native_kernel():
    probe = {**PY, "packages": {"ipykernel": "6.29.5"}}
    env = build_environment("sha256:" + "b" * 64, parse_discovery(f"@@python x\n{json.dumps(probe)}\n@@done\n"))
    (k,) = env.kernels
    assert k.name == "python3" and k.argv == (
        "/opt/env/bin/python3",
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    )
    assert build_environment("sha256:" + "c" * 64, parse_discovery("@@user 1000\n@@done\n")).kernels == ()


def _launcher(tmp_path, *argv, home=None):
    env = {
        "PATH": os.environ["PATH"],
        "TMPDIR": str(tmp_path),
        "BERTH_CONNECTION": '{"key": "secret"}',
        "BERTH_RESOURCE_DIR": "/kernels/x",
        "HOME": home or str(tmp_path / "home"),
    }
    script = 'printf "%s|" "$@"; echo; env | grep ^BERTH_ || echo none; echo "$HOME"; ls -l "$1" | cut -c1-10'
    return subprocess.run(
        [
            "dash" if os.path.exists("/bin/dash") else "sh",
            os.path.join(LAUNCHER_DIR, "berth-launch"),
            "sh",
            "-c",
            script,
            "kernel",  # $0 of the script
            *argv,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def test_the_launcher_writes_a_private_connection_file_and_execs_the_kernelspec(tmp_path):
    args, berth_env, home, mode = _launcher(tmp_path, "{connection_file}", "a{resource_dir}/b {connection_file}")
    conn, combined, _ = args.split("|")
    assert conn.startswith(str(tmp_path / "berth-kernel-")) and conn.endswith(".json")
    assert combined == f"a/kernels/x/b {conn}"  # every placeholder, in any order, in one argument
    assert json.load(open(conn)) == {"key": "secret"} and stat.S_IMODE(os.stat(conn).st_mode) == 0o600
    assert mode == "-rw-------"
    assert berth_env == "none"  # the key is not in the kernel's environment
    assert home == str(tmp_path / "home")
    # a HOME uid 1000 cannot write (an image whose default user is root): a private one under /tmp
    assert _launcher(tmp_path, "x", home="/proc/berth-not-writable")[2] == str(tmp_path / "berth-home")


def test_a_container_spec_runs_the_images_kernel_through_the_mounted_launcher():
    env = build_environment("sha256:" + "a" * 64, parse_discovery(DISCOVERED))
    spec = ContainerSpec(name="k", image="lab/x:1", command=["berth-kernel"], resources=Resources(), labels={})
    spec.env = {"KERNEL_BERTH_KERNELSPEC": "ir", "BERTH_NOTICE": "oom"}
    launch.apply(spec, env.kernel("ir"))
    assert spec.entrypoint == ["/bin/sh", f"{LAUNCHER_TARGET}/berth-launch"]
    assert spec.command == ["R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"]
    assert spec.init and spec.mounts[-1].read_only and spec.mounts[-1].target == LAUNCHER_TARGET
    assert "PYTHONSTARTUP" not in spec.env and "KERNEL_BERTH_KERNELSPEC" not in spec.env
    assert spec.env["BERTH_RESOURCE_DIR"] == "/usr/share/jupyter/kernels/ir"
    assert launch.identity(spec.labels, "lab/x:1", env.catalog_labels()) == {
        "language": "R",
        "kernel": "ir",
        "kernelspec": "berth-lab-x-1-ir",
    }
    py = ContainerSpec(name="k", image="lab/x:1", command=[], resources=Resources(), labels={})
    launch.apply(py, env.kernel("python3"))
    assert py.env["PYTHONSTARTUP"] == f"{LAUNCHER_TARGET}/berth_notices.py"


def test_kernelspecs_one_per_kernel_inside_an_image_with_its_language():
    env = build_environment("sha256:" + "a" * 64, parse_discovery(DISCOVERED))
    lab = ImageInfo(ref="lab/x:1", id=env.image_id, digest=None, labels=env.catalog_labels())
    own = ImageInfo(ref="berth/python:3.11", id="sha256:" + "d" * 64, digest=None, labels={"kind": "kernel"})
    presets = [Preset.parse("small", {"cpu": 0.5, "mem": "256M", "image": "lab/x:1"})]
    specs = {p.name: p.spec for p in plan([lab, own], presets, "berth/python:3.11")}
    assert set(specs) == {
        "berth-lab-x-1-python3",
        "berth-lab-x-1-ir",
        "berth-lab-x-1-bash",
        "berth-python-3.11",
        "berth-preset-small-python3",
        "berth-preset-small-ir",
        "berth-preset-small-bash",
    }
    ir = specs["berth-lab-x-1-ir"]
    assert ir["language"] == "R" and ir["env"] == {"KERNEL_BERTH_KERNELSPEC": "ir"}
    assert (
        ir["metadata"]["jupyter_berth"]["kernel"] == "ir"
        and ir["metadata"]["jupyter_berth"]["language_version"] == "4.2.2"
    )
    assert specs["berth-preset-small-bash"]["metadata"]["kernel_provisioner"]["config"] == {
        "preset": "small",
        "image": "lab/x:1",
    }
    assert kernelspec_for("berth-lab-x-1", lab.labels) == "berth-lab-x-1-python3"
    assert kernelspec_for("berth-python-3.11", own.labels) == "berth-python-3.11"
    with pytest.raises(Exception, match="no kernel 'julia'; it offers: python3, ir, bash"):
        kernelspec_for("berth-lab-x-1", lab.labels, "julia")
    available = {"status": "available", "image": "lab/x:1"}
    assert kernelspec_for_answer([lab, own], available, "bash", "bash") == "berth-lab-x-1-bash"
    retired = {"status": "retired", "image": "lab/x:0", "nearest": {"image": "lab/x:1"}}
    assert kernelspec_for_answer([lab, own], retired, "gone", "R") == "berth-lab-x-1-ir"  # same language
    assert kernelspec_for_answer([lab, own], retired, "gone", "julia") is None


async def test_hub_mode_start_picks_the_kernel_inside_from_the_synced_kernelspecs(tmp_path, monkeypatch):
    """In a hub user's server the catalog is the hub's: the REST start finds the image's kernel among the
    kernelspecs synced from it (the image's python3, else its first; or the one asked for)."""
    from jupyter_client.kernelspec import KernelSpecManager

    from jupyter_berth.errors import NotFoundError
    from jupyter_berth.kernelspecs import sync
    from jupyter_berth.server.handlers.kernels import KernelsHandler

    env = build_environment("sha256:" + "a" * 64, parse_discovery(DISCOVERED))
    lab = ImageInfo(ref="lab/x:1", id=env.image_id, digest=None, labels=env.catalog_labels())
    own = ImageInfo(ref="berth/python:3.11", id="sha256:" + "d" * 64, digest=None, labels={"kind": "kernel"})
    sync(plan([lab, own], [], "berth/python:3.11"), str(tmp_path / "kernels"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    ksm = KernelSpecManager()
    assert await KernelsHandler.kernel_inside(ksm, "berth-lab-x-1", None) == "berth-lab-x-1-python3"
    assert await KernelsHandler.kernel_inside(ksm, "berth-lab-x-1", "ir") == "berth-lab-x-1-ir"
    assert await KernelsHandler.kernel_inside(ksm, "berth-python-3.11", None) == "berth-python-3.11"
    with pytest.raises(NotFoundError, match="no kernel 'julia'; it offers: bash, ir, python3"):
        await KernelsHandler.kernel_inside(ksm, "berth-lab-x-1", "julia")


def test_every_environment_recipe_has_its_files_and_versions_hash_apart():
    from jupyter_berth.imagebuild.bootstrap import RECIPES_DIR
    from jupyter_berth.imagebuild.environments import ALL, RECIPES, folder_hash, recipe

    for r in RECIPES.values():
        folder = os.path.join(RECIPES_DIR, r.folder)
        assert os.path.isfile(os.path.join(folder, "Dockerfile")), r.name
        if "STACK" in r.buildargs:  # the pinned requirements of this version
            pins = open(os.path.join(folder, f"stack-{r.buildargs['STACK']}.txt")).read()
            assert "ipykernel" in pins and "==" in pins, r.name
    assert set(ALL) <= set(RECIPES) and recipe("r").reference == "berth/r:4.2"
    scipy = os.path.join(RECIPES_DIR, "scipy")
    assert folder_hash(scipy, RECIPES["scipy-2024"].buildargs) != folder_hash(scipy, RECIPES["scipy-2025"].buildargs)
    with pytest.raises(Exception, match="unknown recipe 'julia'"):
        recipe("julia")
