"""jupyter_server extension of jupyter-berth (``jupyter_berth.server``)."""


def _jupyter_server_extension_points():
    from .app import BerthExtensionApp

    return [{"module": "jupyter_berth.server.app", "app": BerthExtensionApp}]
