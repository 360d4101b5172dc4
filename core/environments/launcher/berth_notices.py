# jupyter-berth: tell the user, in the first cell they run, why the previous kernel ended (for
# example an out-of-memory kill). Run by IPython kernels as PYTHONSTARTUP from Berth's launcher
# mount, so any image with ipykernel gets it; the message comes from the provisioner in
# BERTH_NOTICE, and nothing happens when it is absent.
def _berth_notices():
    import os
    import sys

    notice = os.environ.pop("BERTH_NOTICE", "")
    if not notice:
        return
    try:
        ip = get_ipython()  # noqa: F821 - defined inside IPython
    except NameError:
        return

    def _tell(*args, **kwargs):
        ip.events.unregister("pre_run_cell", _tell)
        print(f"[Berth] The previous kernel ended: {notice}. Variables from before are gone.", file=sys.stderr)

    ip.events.register("pre_run_cell", _tell)


_berth_notices()
del _berth_notices
