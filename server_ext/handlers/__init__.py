"""REST handlers of the ``berth`` server extension, one module per resource."""
