"""Start one process kernel: join its cgroups, take its rlimits, then exec the kernel.

Run by :class:`~jupyter_berth.runtime.process.ProcessRuntime` as a script (by path,
so that it imports nothing of the package and starts in a few milliseconds), in a
new session, with one JSON argument::

    {"cgroup_procs": ["/sys/fs/cgroup/.../cgroup.procs", ...],
     "rlimits": {"RLIMIT_AS": 536870912, "RLIMIT_NPROC": 300},
     "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "..."]}

Doing this here, between fork and exec, means the kernel runs no code of its own
outside its limits, without a ``preexec_fn`` in the (threaded) server. The kernel
then replaces this process: same pid, same session.
"""

import json
import os
import resource
import sys


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        sys.stderr.write("usage: process_exec.py JSON\n")
        sys.exit(2)
    plan = json.loads(argv[1])
    try:
        for path in plan.get("cgroup_procs") or []:
            with open(path, "w", encoding="ascii") as f:
                f.write(str(os.getpid()))
        for name, value in (plan.get("rlimits") or {}).items():
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
        command = plan["argv"]
        os.execvp(command[0], command)
    except (OSError, ValueError, KeyError, AttributeError) as e:
        sys.stderr.write(f"berth process runtime: could not start the kernel: {e}\n")
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv)
