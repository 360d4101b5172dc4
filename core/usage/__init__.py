"""Usage: samples of running containers, reports per user / group / image / day, metrics.

- :mod:`.sampling`: a round of samples written in one transaction;
- :mod:`.window`: report windows (``since`` / ``until``) and groupings;
- :mod:`.sql`: the report queries; :mod:`.reports`: reports built from them (table, CSV, JSON);
- :mod:`.metrics`: the Prometheus exposition;
- :mod:`.manager`: ``UsageTracker`` (``service.usage``).
"""
