"""Cross-validation of a binary trait: ``method="map"`` (Laplace fit) against ``method="sample"``.

    python benchmarks/probit_cross_validation.py [--n 300] [--snps 1000] [--h2 0.5]
        [--prevalence 0.3] [--folds 5] [--draws 500] [--tune 500] [--chains 2] [--seed 1]
        [--seeds 1]

A 0/1 trait thresholded from ``bl.simulate(--n, --snps, --h2)`` (one covariate, the top
``--prevalence`` of the liability are cases), cross-validated with
``bl.cross_validate(..., family="probit")`` on the same folds by both methods: ``"map"``
(:func:`bayeslmm.inference.optimize.probit_point`, the empirical-Bayes fit with z integrated
out by expectation propagation, and EP's predictive probabilities) and ``"sample"`` (NUTS,
``--chains`` × ``--draws`` after ``--tune``). Printed per simulation seed: the pooled AUC and
Brier score of each, the wall time of each, and the largest and mean absolute difference of
the predicted probabilities. Wall clock on a shared machine: one noisy run.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import bayeslmm as bl
from bayeslmm.inference.cross_validation import cross_validate


def cohort(n: int, snps: int, h2: float, prevalence: float, seed: int):
    """y (0/1 Series), K and X (DataFrames) of a simulated binary trait."""
    data = bl.simulate(n, snps, h2, n_covariates=1, seed=seed)
    ids = np.asarray(data.samples).astype(str)
    y01 = (data.y > np.quantile(data.y, 1.0 - prevalence)).astype(float)
    return (
        pd.Series(y01, index=ids, name="case"),
        pd.DataFrame(data.K, index=ids, columns=ids),
        pd.DataFrame(data.X, index=ids, columns=["x"]),
    )


def main() -> None:
    """Parse the arguments, run both methods per seed, print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--snps", type=int, default=1000)
    parser.add_argument("--h2", type=float, default=0.5)
    parser.add_argument("--prevalence", type=float, default=0.3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=1, help="simulation seeds from --seed")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    for seed in range(args.seed, args.seed + args.seeds):
        y, K, X = cohort(args.n, args.snps, args.h2, args.prevalence, seed)
        results = {}
        for method in ("map", "sample"):
            start = time.perf_counter()
            cv = cross_validate(
                y,
                K=K,
                X=X,
                family="probit",
                n_folds=args.folds,
                method=method,
                sample_options={"draws": args.draws, "tune": args.tune, "chains": args.chains},
                random_seed=seed,
            )
            results[method] = (cv, time.perf_counter() - start)
        diff = np.abs(
            results["map"][0].predictions["y_pred"] - results["sample"][0].predictions["y_pred"]
        )
        for method, (cv, seconds) in results.items():
            row = cv.metrics.loc["all"]
            print(
                f"seed {seed} {method:6s} AUC {row['auc']:.4f} Brier {row['brier']:.4f} "
                f"r {row['r']:.4f} time {seconds:7.1f} s"
            )
        print(f"seed {seed} |p_map - p_sample| max {diff.max():.4f} mean {diff.mean():.4f}")


if __name__ == "__main__":
    main()
