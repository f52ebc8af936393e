"""Cross-validation by ``method="map"`` with and without map_estimate's compilation cache.

    OPENBLAS_NUM_THREADS=1 python benchmarks/map_cache.py [--n 300] [--snps 1000] [--h2 0.5]
        [--folds 5] [--rounds 2] [--seed 1]

``bl.cross_validate(y, K=K, X=X, method="map", n_folds=--folds)`` on ``bl.simulate(--n,
--snps, --h2)`` (one covariate; each sample its own group, so the folds have equal sizes), for
the kinship model (``family="gaussian"``) and the probit model of a 0/1 trait (the top 30 %
of y are cases), timed in two ways in this process:

- before: every fold compiles its own functions (``sampling._map_key`` patched to None, the
  cost of map_estimate before the cache: each model compiled for itself),
- after: the cache emptied first, then the folds share one compilation.

A warm-up fit of each family comes first (imports, numba's disk cache), and each way runs
``--rounds`` times, alternating, the best kept. Printed per family: both wall times, their
ratio, and the largest difference of the predictions (0 up to round-off: the same numbers).
Wall clock on a shared machine: one noisy run.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

import bayeslmm as bl
from bayeslmm.inference import optimize, sampling
from bayeslmm.inference.cross_validation import CrossValidation, cross_validate


def cohort(n: int, snps: int, h2: float, seed: int) -> dict[str, pd.Series | pd.DataFrame]:
    """y, a 0/1 trait from it (top 30 % cases), K and X, indexed by sample ID."""
    data = bl.simulate(n, snps, h2, n_covariates=1, seed=seed)
    ids = np.asarray(data.samples).astype(str)
    y01 = (data.y > np.quantile(data.y, 0.7)).astype(float)
    return {
        "gaussian": pd.Series(data.y, index=ids, name="y"),
        "probit": pd.Series(y01, index=ids, name="case"),
        "K": pd.DataFrame(data.K, index=ids, columns=ids),
        "X": pd.DataFrame(data.X, index=ids, columns=["x"]),
    }


def timed(run: Callable[[], CrossValidation]) -> tuple[float, CrossValidation]:
    start = time.perf_counter()
    cv = run()
    return time.perf_counter() - start, cv


def main() -> None:
    """Parse the arguments, time both ways per family, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--snps", type=int, default=1000)
    parser.add_argument("--h2", type=float, default=0.5)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    data = cohort(args.n, args.snps, args.h2, args.seed)
    key = sampling._map_key
    for family in ("gaussian", "probit"):

        def run(family: str = family) -> CrossValidation:
            return cross_validate(
                data[family],
                K=data["K"],
                X=data["X"],
                family=family,
                n_folds=args.folds,
                method="map",
                random_seed=args.seed,
            )

        bl.map_estimate(bl.kinship_model(data[family], data["K"], data["X"], family=family))
        best = {"before": np.inf, "after": np.inf}
        tables = {}
        for _ in range(args.rounds):
            sampling._map_key = lambda model, info: None  # every fold compiles
            try:
                seconds, tables["before"] = timed(run)
            finally:
                sampling._map_key = key
            best["before"] = min(best["before"], seconds)
            optimize._MAP_COMPILED.clear()
            seconds, tables["after"] = timed(run)
            best["after"] = min(best["after"], seconds)
        diff = np.max(
            np.abs(tables["before"].predictions["y_pred"] - tables["after"].predictions["y_pred"])
        )
        print(
            f"{family:8s} N={args.n} folds={args.folds}: before {best['before']:6.2f} s, "
            f"after {best['after']:6.2f} s, ratio {best['before'] / best['after']:5.2f}x, "
            f"max |y_pred difference| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
