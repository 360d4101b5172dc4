"""The warm pool: kernel containers started ahead and adopted by a start (docs/warm-pool.md).

- :mod:`.warm_pool`: ``WarmPool``, the pools per image and what fits a request;
- :mod:`.activation`: turning an adopted pool container into the user's kernel.
"""
