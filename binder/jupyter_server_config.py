# jupyter-berth on a Binder: read at launch through binder/start (JUPYTER_CONFIG_PATH).
#
# A Binder has no container engine, about 2 GB of memory and one CPU or so: kernels run as
# local processes of the Binder's user (process mode: limits, but no isolation; see
# docs/binder.md), sized so that two or three of them fit next to JupyterLab.
c = get_config()  # noqa: F821 - defined by Jupyter when it reads this file

# No engine to ask: say so instead of probing for one at every start.
c.BerthService.runtime_kind = "process"
# Kept back for the Jupyter server and JupyterLab; the rest (capacity = the Binder's own
# memory limit, read from its cgroup) is what kernels may be given.
c.BerthService.mem_reserved = "512M"
c.UsageTracker.sample_interval = 10.0
c.BerthService.stop_timeout = 3.0

c.BerthService.default_policy = {
    "max_cpu": 1,
    "max_mem": "1G",
    "max_pids": 256,
    "max_kernels": 3,
    "default": {"cpu": 0.5, "mem": "512M", "pids": 128},
}
c.BerthService.presets = {
    "small": {
        "cpu": 0.25,
        "mem": "256M",
        "display_name": "Small (0.25 CPU, 256 MiB)",
        "description": "for a quick look",
    },
    "medium": {
        "cpu": 1,
        "mem": "1G",
        "display_name": "Medium (1 CPU, 1 GiB)",
        "description": "the most one kernel may have here",
    },
}

# Limits: a cgroup per kernel where the cgroup filesystem is writable, otherwise (the usual
# case on a Binder) RLIMIT_AS for memory and RLIMIT_NPROC for processes; CPU is then not bounded.
c.ProcessRuntime.limits = "auto"
