"""Image versions side by side: the catalog users pick from and what admins do with it.

- :mod:`.catalog`: what an image offers (labels, references, the nearest version), pure;
- :mod:`.state`: the admin's decisions in the ledger (offered, hidden, retired, aliases, history);
- :mod:`.engine_ops`: docker-py calls on images (inspect, tag, pull, push, remove);
- :mod:`.build`: build plans and builds of new versions on an offered base;
- :mod:`.operations`: long pulls and builds running in the background;
- :mod:`.manager`: ``ImageCatalog`` (``service.images``); :mod:`.versions`: ``ImageVersions``
  (``service.images.versions``: pull, push, build).

The offline bootstrap of the base images is :mod:`jupyter_berth.imagebuild`.
"""
