"""Chains of the exact samplers in threads: one function over the chains' seeds.

The exact samplers (``sampler="bslmm"``, :mod:`bayeslmm.inference.bslmm_mcmc`, and
``sampler="gibbs"``, :mod:`bayeslmm.inference.horseshoe_gibbs`) spend their time in compiled
kernels and LAPACK calls that release the GIL, so their chains run in threads of one process
(no copies of the data, no pickling). Each chain draws from its own generator, so the draws do
not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor


def map_chains[T, R](one: Callable[[T], R], seeds: Sequence[T], cores: int | None) -> list[R]:
    """``[one(s) for s in seeds]``, in up to ``cores`` threads (default: all cores), in order.

    Parameters
    ----------
    one
        Runs one chain from its seed.
    seeds
        One per chain.
    cores
        Most threads; None: ``os.cpu_count()``. One thread (or one chain) runs them in turn in
        the calling thread.
    """
    workers = min(len(seeds), cores if cores is not None else os.cpu_count() or 1)
    if workers <= 1:
        return [one(seed) for seed in seeds]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, seeds))
