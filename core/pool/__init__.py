"""The warm pool: kernel containers started ahead and adopted by a start (docs/warm-pool.md).

- :mod:`.warm_pool`: ``WarmPool``, the pools per image and what fits a request;
- :mod:`.activation`: turning an adopted pool container into the user's kernel;
- :mod:`.mount_handover`: giving a running container its user's files by mount propagation;
- :mod:`.pool_mounts`: the pool's side of it (slots, volumes resolved, release after a restart);
- :mod:`.pool_sizing`: how many containers wait (demand, memory reserve);
- :mod:`.filler`: the thread the pool creates its containers on.
"""
