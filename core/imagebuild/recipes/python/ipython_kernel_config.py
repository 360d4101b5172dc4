# jupyter-berth: IPython kernel settings for every kernel of this image.
#
# The container's home (and so ~/.ipython/profile_default/history.sqlite) is discarded
# with the container, so a history file on disk would never be read again: keep the
# session's history in memory instead. In/Out, _i, %history and a console's up-arrow
# work as before within the kernel; the kernel starts faster (no database to create,
# no history-saving thread). A profile's own ipython_kernel_config.py can set it back.
c.HistoryManager.hist_file = ":memory:"  # noqa: F821 - `c` is IPython's config object
