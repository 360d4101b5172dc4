"""GPU enforcement plans and the IPython caps file, on devices declared in config.

These machines have no GPU: the plans are checked against declared devices,
and the startup file runs under plain Python with no framework, or with tiny
fake ``torch`` / ``tensorflow`` packages written to a temporary directory (test
doubles for GPU frameworks that cannot run here). What holds on real hardware is
left to ``benchmarks/gpu_enforcement_check.py``.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from docker.types import DeviceRequest

from jupyter_berth.errors import RequestError
from jupyter_berth.gpu import (
    STARTUP_CAPS_SOURCE,
    STARTUP_FILENAME,
    GpuDevice,
    GpuShare,
    assign,
    docker_device_requests,
    docker_run_kwargs,
    plan,
    write_startup_file,
)
from jupyter_berth.gpu.enforcement import DEFAULT_MPS_PIPE_DIRECTORY, NO_MPS_PIPE_DIRECTORY

GiB = 1024**3
REPO = Path(__file__).resolve().parent.parent
T4 = GpuDevice(
    index=0,
    uuid="GPU-5f3c0a11-0000-4000-8000-000000000001",
    name="declared Tesla T4",
    memory_bytes=16 * GiB,
    declared=True,
)
A100 = GpuDevice(
    index=1, uuid="GPU-5f3c0a11-0000-4000-8000-000000000002", name="declared A100", memory_bytes=40 * GiB, declared=True
)
DEVICES = [T4, A100]
QUARTER = [GpuShare(T4.uuid, 0.25)]
CAP_VARIABLES = (
    "XLA_PYTHON_CLIENT_MEM_FRACTION",
    "XLA_CLIENT_MEM_FRACTION",
    "BERTH_JAX_MEMORY_FRACTION",
    "BERTH_TORCH_MEMORY_FRACTION",
    "BERTH_TF_MEMORY_LIMIT_MB",
    "LD_PRELOAD",
    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
)


# --- plans -------------------------------------------------------------------------


def test_declared_gpu_quarter_share_gets_its_device_and_framework_caps():
    p = plan(QUARTER, DEVICES, "none")
    assert p.device_ids == [T4.uuid]
    assert p.env["NVIDIA_VISIBLE_DEVICES"] == T4.uuid
    assert p.env["BERTH_GPU_SHARE"] == "0.25"
    assert p.env["BERTH_GPU_MEMORY_BYTES"] == str(4 * GiB) and p.memory_bytes == 4 * GiB
    assert p.env["BERTH_JAX_MEMORY_FRACTION"] == "0.25"  # the startup file names it for JAX (image env unknown)
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in p.env and "XLA_CLIENT_MEM_FRACTION" not in p.env
    assert p.env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert p.env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert p.env["BERTH_TF_MEMORY_LIMIT_MB"] == "4096"
    assert p.env["BERTH_TORCH_MEMORY_FRACTION"] == "0.25"
    assert "LD_PRELOAD" not in p.env and "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" not in p.env
    assert p.mounts == [] and p.ipc_mode is None and p.mechanism == "none"
    assert any("cooperative" in note for note in p.notes)


def test_declared_gpu_quarter_share_under_mps_gets_mps_limits_and_the_pipe():
    p = plan(QUARTER, DEVICES, "mps")
    assert p.env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    # the one granted device is ordinal 0 inside the container
    assert p.env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=4096M"
    assert p.env["CUDA_MPS_PIPE_DIRECTORY"] == "/run/nvidia-mps"  # not NVIDIA's default /tmp/nvidia-mps
    assert p.mounts == [("/run/nvidia-mps", "/run/nvidia-mps", False)]
    assert p.ipc_mode == "host" and p.mechanism == "mps"
    assert p.env["BERTH_JAX_MEMORY_FRACTION"] == "0.25"  # framework caps stay as the floor
    custom = plan(QUARTER, DEVICES, "mps", mps_pipe_directory="/srv/mps")
    assert custom.mounts == [("/srv/mps", "/srv/mps", False)]
    for bad in ("nvidia-mps", NO_MPS_PIPE_DIRECTORY):
        with pytest.raises(RequestError) as e:
            plan(QUARTER, DEVICES, "mps", mps_pipe_directory=bad)
        assert e.value.field == "gpu_mps_pipe_directory"


def test_declared_gpu_default_mps_pipe_directory_is_not_nvidias_and_nvidias_is_warned_about():
    assert DEFAULT_MPS_PIPE_DIRECTORY != "/tmp/nvidia-mps"
    assert not any("every GPU container" in note for note in plan(QUARTER, DEVICES, "mps").notes)
    warned = plan(QUARTER, DEVICES, "mps", mps_pipe_directory="/tmp/nvidia-mps")
    assert any("every GPU container" in note for note in warned.notes)


@pytest.mark.parametrize(
    "shares, mechanism",
    [
        (QUARTER, "none"),
        (QUARTER, "interception"),
        ([GpuShare(T4.uuid, 1.0)], "none"),
        ([GpuShare(T4.uuid, 1.0)], "mps"),  # a whole device under an MPS host is no MPS client
        ([GpuShare(T4.uuid, 1.0), GpuShare(A100.uuid, 1.0)], "interception"),
    ],
)
def test_declared_gpu_every_non_mps_plan_points_cuda_at_no_mps_daemon(shares, mechanism):
    p = plan(shares, DEVICES, mechanism, "/opt/hami/libvgpu.so")
    assert p.mechanism != "mps"
    assert p.env["CUDA_MPS_PIPE_DIRECTORY"] == NO_MPS_PIPE_DIRECTORY == "/dev/null/berth-no-mps"
    assert NO_MPS_PIPE_DIRECTORY.startswith("/dev/null/")  # no directory can ever exist under /dev/null
    assert not any(dst == NO_MPS_PIPE_DIRECTORY for _, dst, _ in p.mounts) and p.ipc_mode is None


def test_declared_gpu_quarter_share_under_interception_preloads_the_admin_library():
    p = plan(
        QUARTER,
        DEVICES,
        "interception",
        "/opt/hami/libvgpu.so",
        {"CUDA_DEVICE_MEMORY_LIMIT": "{memory_mb}m", "CUDA_DEVICE_SM_LIMIT": "{share_percent}"},
        interception_mounts=[("/tmp/vgpulock", "/tmp/vgpulock", False)],
    )
    assert p.env["LD_PRELOAD"] == "/opt/berth/gpu/libvgpu.so"
    assert ("/opt/hami/libvgpu.so", "/opt/berth/gpu/libvgpu.so", True) in p.mounts  # read-only
    assert ("/tmp/vgpulock", "/tmp/vgpulock", False) in p.mounts
    assert p.env["CUDA_DEVICE_MEMORY_LIMIT"] == "4096m"
    assert p.env["CUDA_DEVICE_SM_LIMIT"] == "25"
    assert p.mechanism == "interception" and p.ipc_mode is None


def test_declared_gpu_interception_caps_frameworks_once_not_twice():
    """HAMi-core reports the budget as the device total: a fraction of it again would give 1/16, not 1/4."""
    p = plan(QUARTER, DEVICES, "interception", "/opt/hami/libvgpu.so", {"CUDA_DEVICE_MEMORY_LIMIT": "{memory_mb}m"})
    reported_total = 4 * GiB  # what cuMemGetInfo / cuDeviceTotalMem answer under the library
    assert float(p.env["BERTH_JAX_MEMORY_FRACTION"]) * reported_total == p.memory_bytes
    assert "BERTH_TORCH_MEMORY_FRACTION" not in p.env  # no second cap on PyTorch
    assert int(p.env["BERTH_TF_MEMORY_LIMIT_MB"]) * 1024**2 == p.memory_bytes  # TF's limit is absolute
    assert any("reports the 4096 MiB budget as the device's total" in note for note in p.notes)
    # without interception the frameworks see the whole device: the fraction is the share
    free = plan(QUARTER, DEVICES, "none")
    assert float(free.env["BERTH_JAX_MEMORY_FRACTION"]) * T4.memory_bytes == free.memory_bytes
    assert float(free.env["BERTH_TORCH_MEMORY_FRACTION"]) * T4.memory_bytes == free.memory_bytes


def test_declared_gpu_interception_mounts_are_normalised_or_refused_naming_the_entry():
    from jupyter_berth.gpu.enforcement import parse_interception_mounts

    assert parse_interception_mounts(
        ["/tmp/vgpulock", "/a:/b", "/c:/d:ro", ("/e", "/f"), ["/g", "/h", True], {"source": "/i", "target": "/j"}]
    ) == [
        ("/tmp/vgpulock", "/tmp/vgpulock", False),
        ("/a", "/b", False),
        ("/c", "/d", True),
        ("/e", "/f", False),
        ("/g", "/h", True),
        ("/i", "/j", False),
    ]
    for bad in (["rel:/x"], ["/a:/b:maybe"], [("/a",)], [{"target": "/x"}], [("/a", "/b", "yes")]):
        with pytest.raises(RequestError) as e:
            parse_interception_mounts(bad)
        assert e.value.field == "gpu_interception_mounts[0]"


@pytest.mark.parametrize(
    "library, env, field",
    [
        (None, {}, "gpu_interception_library"),
        ("libvgpu.so", {}, "gpu_interception_library"),
        (
            "/opt/hami/libvgpu.so",
            {"CUDA_DEVICE_MEMORY_LIMIT": "{memory_gb}g"},
            "gpu_interception_env.CUDA_DEVICE_MEMORY_LIMIT",
        ),
        ("/opt/hami/libvgpu.so", {"X": "{memory_mb"}, "gpu_interception_env.X"),
    ],
)
def test_declared_gpu_interception_config_errors_name_the_setting(library, env, field):
    with pytest.raises(RequestError) as e:
        plan(QUARTER, DEVICES, "interception", library, env)
    assert e.value.field == field


@pytest.mark.parametrize(
    "image_env, expected",
    [
        (None, None),  # unknown: neither in the container, the startup file names it in the kernel
        ({}, "XLA_PYTHON_CLIENT_MEM_FRACTION"),  # read by every jaxlib that has either name
        ({"XLA_CLIENT_MEM_FRACTION": "0.9"}, "XLA_CLIENT_MEM_FRACTION"),  # the image chose the new name
        ({"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9"}, "XLA_PYTHON_CLIENT_MEM_FRACTION"),
    ],
)
def test_declared_gpu_jax_fraction_never_sets_both_names_and_follows_the_image(image_env, expected):
    for mechanism, fraction in (("none", "0.25"), ("interception", "1")):
        p = plan(QUARTER, DEVICES, mechanism, "/opt/hami/libvgpu.so", image_env=image_env)
        container = {**(image_env or {}), **p.env}  # Docker: the plan's variables over the image's
        named = [v for v in ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION") if v in p.env]
        assert named == ([expected] if expected else [])
        if image_env is not None:
            assert not all(v in container for v in ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION"))
            assert container[expected] == fraction  # Berth's budget, under the image's chosen name
        assert p.env["BERTH_JAX_MEMORY_FRACTION"] == fraction


def test_image_environment_reads_the_engines_config_env():
    from jupyter_berth.gpu.enforcement import image_environment

    assert image_environment(["PATH=/usr/bin", "XLA_CLIENT_MEM_FRACTION=0.9", "EMPTY="]) == {
        "PATH": "/usr/bin",
        "XLA_CLIENT_MEM_FRACTION": "0.9",
        "EMPTY": "",
    }
    assert image_environment(None) == {}


def test_declared_gpu_whole_devices_get_no_caps():
    p = plan(assign(DEVICES, {}, 2), DEVICES, "mps", "/opt/hami/libvgpu.so")
    assert p.device_ids == [T4.uuid, A100.uuid]
    assert p.env["NVIDIA_VISIBLE_DEVICES"] == f"{T4.uuid},{A100.uuid}"
    assert p.env["BERTH_GPU_SHARE"] == "2"
    assert p.env["BERTH_GPU_MEMORY_BYTES"] == str(56 * GiB)
    assert not any(v in p.env for v in CAP_VARIABLES)
    assert p.env["CUDA_MPS_PIPE_DIRECTORY"] == NO_MPS_PIPE_DIRECTORY  # whole devices never join a daemon
    assert p.mounts == [] and p.ipc_mode is None and p.mechanism == "none"


def test_no_gpu_hides_every_gpu_and_requests_no_device():
    p = plan([], DEVICES, "mps")
    assert p.device_ids == [] and p.env == {"NVIDIA_VISIBLE_DEVICES": "void"}
    assert docker_device_requests(p) == []
    assert "device_requests" not in docker_run_kwargs(p)


def test_declared_gpu_docker_device_request_names_the_uuid():
    p = plan(QUARTER, DEVICES, "mps")
    (request,) = docker_device_requests(p)
    assert isinstance(request, DeviceRequest)
    assert request.device_ids == [T4.uuid]
    assert request.capabilities == [["gpu"]]
    kwargs = docker_run_kwargs(p)
    assert kwargs["device_requests"][0]["DeviceIDs"] == [T4.uuid]
    assert kwargs["ipc_mode"] == "host"
    assert kwargs["mounts"][0]["Source"] == "/run/nvidia-mps" and kwargs["mounts"][0]["ReadOnly"] is False


@pytest.mark.parametrize(
    "shares, words",
    [
        ([GpuShare("GPU-unknown", 0.25)], "not in this host's GPU inventory"),
        ([GpuShare(T4.uuid, 0.25), GpuShare(A100.uuid, 0.25)], "one device only"),
        ([GpuShare(T4.uuid, 1.0), GpuShare(T4.uuid, 1.0)], "same device twice"),
        ([GpuShare(T4.uuid, 2.0)], "above 1 on one device"),
    ],
)
def test_declared_gpu_inconsistent_grants_are_refused(shares, words):
    with pytest.raises(RequestError) as e:
        plan(shares, DEVICES)
    assert words in e.value.message


def test_unknown_mechanism_is_refused():
    with pytest.raises(RequestError) as e:
        plan(QUARTER, DEVICES, "vgpu")
    assert e.value.field == "gpu_enforcement"


# --- the IPython startup file ------------------------------------------------------

FAKE_TORCH = {
    "torch/__init__.py": "from . import cuda\n",
    "torch/cuda.py": textwrap.dedent(
        """
        import json, os
        _initialized, _queued = False, []
        def is_available():
            return os.environ.get("FAKE_CUDA_AVAILABLE", "1") == "1"
        def device_count():
            return 1
        def is_initialized():
            return _initialized
        def _lazy_call(callable):  # PyTorch's hook: queue until CUDA starts, or run now
            if _initialized:
                callable()
            else:
                _queued.append(callable)
        def init():  # what PyTorch's _lazy_init does on first CUDA use
            global _initialized
            if not is_available():
                raise RuntimeError("no CUDA")
            _initialized = True
            for queued in _queued:
                queued()
        def set_per_process_memory_fraction(fraction, device=None):
            if os.environ.get("FAKE_TORCH_FAILS"):
                raise RuntimeError("CUDA driver initialization failed")
            with open(os.environ["FAKE_RECORD"], "a") as f:
                f.write(json.dumps({"call": "set_per_process_memory_fraction", "fraction": fraction, "device": device}) + "\\n")
        """
    ),
}
FAKE_TENSORFLOW = {
    "tensorflow/__init__.py": textwrap.dedent(
        """
        import json, os
        class LogicalDeviceConfiguration:
            def __init__(self, memory_limit=None):
                self.memory_limit = memory_limit
        class _Config:
            def list_physical_devices(self, kind):
                return ["/physical_device:GPU:0"] if kind == "GPU" else []
            def set_logical_device_configuration(self, device, configs):
                with open(os.environ["FAKE_RECORD"], "a") as f:
                    f.write(json.dumps({"call": "set_logical_device_configuration", "device": device,
                                        "memory_limit": [c.memory_limit for c in configs]}) + "\\n")
        config = _Config()
        config.LogicalDeviceConfiguration = LogicalDeviceConfiguration
        """
    ),
}


@pytest.fixture
def startup_file(tmp_path) -> Path:
    return write_startup_file(tmp_path / "startup")


def run_startup(
    startup_file: Path, tmp_path: Path, *, after: str = "", fakes: dict | None = None, **env
) -> tuple[subprocess.CompletedProcess, list]:
    """Run the startup file with plain python (then ``after``), return the process and recorded calls."""
    pythonpath = tmp_path / "site"
    for name, text in (fakes or {}).items():
        (pythonpath / name).parent.mkdir(parents=True, exist_ok=True)
        (pythonpath / name).write_text(text)
    record = tmp_path / "record.jsonl"
    code = f"exec(compile(open({str(startup_file)!r}).read(), {STARTUP_FILENAME!r}, 'exec'))\n{after}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("BERTH_", "FAKE_"))}
    environ.update(PYTHONPATH=str(pythonpath), FAKE_RECORD=str(record), **env)
    proc = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return proc, calls


CAPS_ENV = {"BERTH_TORCH_MEMORY_FRACTION": "0.25", "BERTH_TF_MEMORY_LIMIT_MB": "4096"}


def test_startup_file_is_written_atomically_with_the_source(startup_file):
    assert startup_file.name == "00-berth-gpu-caps.py"
    assert startup_file.read_text() == STARTUP_CAPS_SOURCE
    assert startup_file.stat().st_mode & 0o777 == 0o644
    assert write_startup_file(startup_file.parent) == startup_file  # rewriting is fine
    assert [p.name for p in startup_file.parent.iterdir()] == [STARTUP_FILENAME]


def test_startup_file_without_any_framework_does_nothing_and_imports_nothing(startup_file, tmp_path):
    after = "import sys; print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow')), len(sys.meta_path))"
    proc, calls = run_startup(startup_file, tmp_path, after=after, **CAPS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    baseline = subprocess.run(
        [sys.executable, "-c", "import sys; print(len(sys.meta_path))"], capture_output=True, text=True
    )
    assert proc.stdout.split() == ["[]", baseline.stdout.strip()]  # no finder installed either
    assert calls == []


def test_startup_file_with_fake_torch_test_double_caps_torch_when_cuda_starts_not_at_import(startup_file, tmp_path):
    after = "import os, torch\nimport torch\nprint(os.path.exists(os.environ['FAKE_RECORD']), torch.cuda.is_initialized())\ntorch.cuda.init()"
    proc, calls = run_startup(startup_file, tmp_path, after=after, fakes=FAKE_TORCH, **CAPS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]  # after import: no cap yet, CUDA not started by Berth
    assert calls == [{"call": "set_per_process_memory_fraction", "fraction": 0.25, "device": 0}]  # once, at CUDA start


def test_startup_file_with_fake_torch_test_double_without_the_lazy_hook_caps_at_import(startup_file, tmp_path):
    fakes = dict(FAKE_TORCH)
    fakes["torch/cuda.py"] = fakes["torch/cuda.py"].replace("def _lazy_call(", "def _no_lazy_call(")
    proc, calls = run_startup(startup_file, tmp_path, after="import torch", fakes=fakes, **CAPS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert calls == [{"call": "set_per_process_memory_fraction", "fraction": 0.25, "device": 0}]


def test_startup_file_with_fake_torch_test_double_is_lazy_until_import(startup_file, tmp_path):
    proc, calls = run_startup(
        startup_file, tmp_path, after="import sys; assert 'torch' not in sys.modules", fakes=FAKE_TORCH, **CAPS_ENV
    )
    assert proc.returncode == 0, proc.stderr
    assert calls == []


def test_startup_file_with_fake_torch_test_double_leaves_loader_untouched(startup_file, tmp_path):
    after = "import torch; print(type(torch.__loader__).__name__, type(torch.__spec__.loader).__name__)"
    proc, _ = run_startup(startup_file, tmp_path, after=after, fakes=FAKE_TORCH, **CAPS_ENV)
    assert proc.stdout.split() == ["SourceFileLoader", "SourceFileLoader"]


def test_startup_file_with_fake_torch_test_double_without_cuda_sets_nothing(startup_file, tmp_path):
    proc, calls = run_startup(
        startup_file, tmp_path, after="import torch", fakes=FAKE_TORCH, FAKE_CUDA_AVAILABLE="0", **CAPS_ENV
    )
    assert proc.returncode == 0 and calls == []


def test_startup_file_with_failing_fake_torch_test_double_warns_and_goes_on(startup_file, tmp_path):
    proc, calls = run_startup(
        startup_file,
        tmp_path,
        after="import torch\ntorch.cuda.init()\nprint('kernel still running')",
        fakes=FAKE_TORCH,
        FAKE_TORCH_FAILS="1",
        **CAPS_ENV,
    )
    assert proc.returncode == 0
    assert "kernel still running" in proc.stdout
    assert "jupyter-berth could not apply the PyTorch GPU memory cap: CUDA driver initialization failed" in proc.stderr
    assert calls == []


def test_startup_file_with_fake_torch_test_double_and_no_grant_does_nothing(startup_file, tmp_path):
    proc, calls = run_startup(startup_file, tmp_path, after="import torch", fakes=FAKE_TORCH)
    assert proc.returncode == 0 and calls == []


@pytest.mark.parametrize(
    "image_env, expected",
    [
        ({}, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.25", "XLA_CLIENT_MEM_FRACTION": None}),
        (
            {"XLA_CLIENT_MEM_FRACTION": "0.9"},
            {"XLA_CLIENT_MEM_FRACTION": "0.25", "XLA_PYTHON_CLIENT_MEM_FRACTION": None},
        ),
        (
            {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.9"},
            {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.25", "XLA_CLIENT_MEM_FRACTION": None},
        ),
        (  # an image that set both (broken with current jaxlib): the new name stays, the deprecated goes
            {"XLA_CLIENT_MEM_FRACTION": "0.9", "XLA_PYTHON_CLIENT_MEM_FRACTION": "0.8"},
            {"XLA_CLIENT_MEM_FRACTION": "0.25", "XLA_PYTHON_CLIENT_MEM_FRACTION": None},
        ),
    ],
)
def test_startup_file_names_the_declared_gpu_jax_fraction_once_for_the_kernel_and_its_children(
    startup_file, tmp_path, image_env, expected
):
    after = (
        "import json, os, subprocess, sys\n"
        "child = subprocess.run([sys.executable, '-c', 'import json, os; print(json.dumps({k: os.environ.get(k) "
        'for k in ("XLA_CLIENT_MEM_FRACTION", "XLA_PYTHON_CLIENT_MEM_FRACTION")}))\'], capture_output=True, text=True)\n'
        "print(child.stdout.strip())\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'jaxlib'))))"
    )
    with pytest.MonkeyPatch.context() as mp:  # this process's own JAX variables must not leak in
        for k in os.environ:
            if "MEM_FRACTION" in k:
                mp.delenv(k)
        proc, _ = run_startup(startup_file, tmp_path, after=after, BERTH_JAX_MEMORY_FRACTION="0.25", **image_env)
    assert proc.returncode == 0, proc.stderr
    child, imported = proc.stdout.splitlines()
    assert json.loads(child) == expected  # a `!python` subprocess inherits the kernel's choice
    assert json.loads(imported) == []  # naming the variable imports nothing


def test_startup_file_with_fake_tensorflow_test_double_sets_a_logical_device_limit(startup_file, tmp_path):
    proc, calls = run_startup(startup_file, tmp_path, after="import tensorflow", fakes=FAKE_TENSORFLOW, **CAPS_ENV)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        {"call": "set_logical_device_configuration", "device": "/physical_device:GPU:0", "memory_limit": [4096]}
    ]


def test_startup_file_with_fake_torch_test_double_already_imported_is_capped_at_once(startup_file, tmp_path):
    pythonpath = tmp_path / "site"
    for name, text in FAKE_TORCH.items():
        (pythonpath / name).parent.mkdir(parents=True, exist_ok=True)
        (pythonpath / name).write_text(text)
    record = tmp_path / "record.jsonl"
    code = f"import torch\ntorch.cuda.init()\nexec(open({str(startup_file)!r}).read())"  # CUDA already started
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "FAKE_RECORD": str(record), **CAPS_ENV}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(record.read_text())["fraction"] == 0.25


def test_startup_file_in_a_real_ipython_profile_with_fake_torch_test_double(tmp_path):
    """IPython itself runs the file from profile_default/startup, and leaves the user namespace clean."""
    pytest.importorskip("IPython")
    write_startup_file(tmp_path / "ipython" / "profile_default" / "startup")
    for name, text in FAKE_TORCH.items():
        (tmp_path / "site" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "site" / name).write_text(text)
    record = tmp_path / "record.jsonl"
    env = {
        **os.environ,
        "IPYTHONDIR": str(tmp_path / "ipython"),
        "PYTHONPATH": str(tmp_path / "site"),
        "FAKE_RECORD": str(record),
        **CAPS_ENV,
    }
    code = "import torch; torch.cuda.init(); print(sorted(n for n in dir() if 'berth' in n))"
    proc = subprocess.run(
        [sys.executable, "-m", "IPython", "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("[]")
    assert json.loads(record.read_text()) == {"call": "set_per_process_memory_fraction", "fraction": 0.25, "device": 0}


# --- the hardware check script -------------------------------------------------------


def test_enforcement_check_script_says_there_is_no_gpu_here():
    from jupyter_berth.gpu import discover

    if discover().devices:
        pytest.skip("this host has an NVIDIA GPU; run the check for real instead")
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_enforcement_check.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 77
    assert proc.stdout.startswith("no NVIDIA GPU on this host (")
    assert "--checklist" in proc.stdout


def _verdicts():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check_verdicts", REPO / "benchmarks" / "gpu_check_verdicts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_enforcement_check_requires_a_declared_gpu_kernel_to_reach_90_percent_of_its_budget():
    v = _verdicts()
    cap = plan(QUARTER, DEVICES, "interception", "/opt/hami/libvgpu.so").memory_bytes  # 4 GiB of a declared T4
    report = {"visible_devices": 1}
    assert v.judge({**report, "allocated": cap}, cap, "interception", "cuda", 1, 0)["verdict"] == "PASS"
    assert v.judge({**report, "allocated": cap * 91 // 100}, cap, "interception", "cuda", 1, 0)["verdict"] == "PASS"
    # the double cap of issue 21 (0.25 of a total the library already shrank to 4 GiB): 1 GiB
    twice = v.judge({**report, "allocated": cap // 4}, cap, "interception", "torch", 1, 0)
    assert twice["verdict"] == "FAIL" and "reach only 1024 MiB = 25%" in twice["detail"]
    assert v.judge({**report, "allocated": cap + 1}, cap, "mps", "cuda", 1, 0)["verdict"] == "FAIL"
    assert v.judge({**report, "allocated": 2 * cap}, cap, "none", "cuda", 1, 0)["verdict"] == "WARN"
    assert v.judge({"visible_devices": 2, "allocated": cap}, cap, "mps", "cuda", 1, 0)["verdict"] == "FAIL"
    # MPS's "M" read as 10^6 bytes leaves 95 % of a MiB budget: still reachable
    assert v.judge({**report, "allocated": 4096 * 10**6}, cap, "mps", "cuda", 1, 0)["verdict"] == "PASS"
    # a probe kept short of the device (target) is measured against that target
    assert v.judge({**report, "allocated": cap // 2}, cap, "none", "torch", 1, 0, target=cap // 2)["verdict"] == "PASS"
    assert v.chunk_for(cap) == 64 * 1024**2 and v.chunk_for(256 * 1024**2) == 4 * 1024**2


def test_enforcement_check_subprocess_probe_tells_per_process_from_per_container_on_a_declared_gpu():
    v = _verdicts()
    cap = plan(QUARTER, DEVICES, "mps").memory_bytes
    each_full = {"children": [{"allocated": cap}, {"allocated": cap}]}
    shared = {"children": [{"allocated": cap // 2}, {"allocated": cap // 2}]}
    mps = v.judge_processes(each_full, cap, "mps", 0)
    assert mps["verdict"] == "PASS" and "per process" in mps["detail"] and "= 8192 MiB" in mps["detail"]
    assert v.judge_processes(shared, cap, "mps", 0)["verdict"] == "FAIL"  # not what NVIDIA documents
    assert v.judge_processes(shared, cap, "interception", 0)["verdict"] == "PASS"
    assert v.judge_processes(each_full, cap, "interception", 0)["verdict"] == "FAIL"
    assert v.judge_processes(each_full, cap, "none", 0)["verdict"] == "WARN"
    assert v.judge_processes({"children": [{"error": "no libcuda"}]}, cap, "mps", 0)["verdict"] == "FAIL"


def test_enforcement_check_prints_an_admin_checklist_without_a_gpu():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_enforcement_check.py"), "--checklist", "--mechanism", "mps"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("1. nvidia-smi -L")
    text = proc.stdout
    for needle in (
        "CUDA_MPS_PIPE_DIRECTORY=/run/nvidia-mps",
        "CUDA_DEVICE_ORDER=PCI_BUS_ID",
        "set_default_device_pinned_mem_limit <ordinal>",
        "only servers started afterwards",
        "get_server_list",
        "accept-nvidia-visible-devices-envvar-when-unprivileged",
        "gpu_enforcement_check.py --image",
    ):
        assert needle in text, needle


def test_docs_admin_gpus_state_what_the_declared_gpu_plans_do_and_where_each_claim_comes_from():
    """docs/admin-gpus.md matches the code and names its sources (issue 21's documentation items)."""
    import re

    from jupyter_berth.gpu.startup_caps import DEFAULT_STARTUP_DIR

    docs = (REPO / "docs" / "admin-gpus.md").read_text()
    flat = " ".join(docs.split())
    p = plan(QUARTER, DEVICES, "mps")
    assert f"default **`{p.env['CUDA_MPS_PIPE_DIRECTORY']}`**" in flat  # the documented default is the code's
    assert f"CUDA_MPS_PIPE_DIRECTORY={NO_MPS_PIPE_DIRECTORY}" in flat
    assert "export CUDA_MPS_PIPE_DIRECTORY=/tmp/nvidia-mps" not in docs  # no longer the recommended set-up
    assert DEFAULT_STARTUP_DIR in flat and "gpu_caps_startup_dir" in flat
    for claim in (
        "Limits are per process, not per container.",
        "gets the whole budget and SM percentage",
        "only servers started later",
        "CUDA_DEVICE_ORDER=PCI_BUS_ID",
        "`FASTEST_FIRST`",
        "Do not key limits by UUID",
        '"Megabyte" is ambiguous.',
        "accept-nvidia-visible-devices-envvar-when-unprivileged = false",
        "A Swarm service cannot ask for an IPC mode",
        "`nvmlDeviceGetMPSComputeRunningProcesses`",
        "a limit **per container**",
        "fraction of 1 and PyTorch no fraction under interception",
        "documentation only",
        "gpu_interception_mounts",
    ):
        assert claim in flat, claim
    cited = set(re.findall(r"\[([A-Z]\d)\]", docs))
    defined = set(re.findall(r"^- \[([A-Z]\d)\] ", docs, re.M))
    assert cited and cited <= defined, sorted(cited - defined)  # every cited source is named in Sources
