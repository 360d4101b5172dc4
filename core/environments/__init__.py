"""Environments: any image with a Jupyter kernel serves Berth kernels, in any language.

* :mod:`.model` — what an image offers (kernels, languages, interpreter and framework versions),
  parsed from what ``launcher/berth-discover`` prints; pure.
* :mod:`.inspection` — the one short-lived, network-less container that looks inside an image at
  offer time and smoke-starts each kernel it finds.
* :mod:`.store` — the results, by image content id.
* :mod:`.launch` — a kernel container that runs the image's own kernelspec through the launcher
  folder (``launcher/``, shipped in the package) mounted read-only.
* :mod:`.manager` — ``EnvironmentManager``, composed into the service.
"""
