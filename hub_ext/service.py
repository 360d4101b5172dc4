"""``python -m jupyter_berth.hub.service``: run the hub-managed Berth service (see :mod:`.service_app`)."""

from .service_app import BerthHubService, main

__all__ = ["BerthHubService", "main"]

if __name__ == "__main__":
    main()
