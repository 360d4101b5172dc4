"""Virtual folders: a user's or a group's directory, shared read-only or read-write, with quotas.

- :mod:`.model`: names, references, rights and quotas (pure rules);
- :mod:`.fs`: the host side (paths, measuring and deleting without following links);
- :mod:`.store`: the folder rows' queries on the ledger;
- :mod:`.manager`: ``FolderManager`` (``service.folders``).
"""
