"""Mixing of the horseshoe's exact Gibbs sampler on the planted recovery data (issue 12).

tests/test_sparse.py's planted simulation (N = 300, M = 200, three large effects), the recovery
test's draws (2 chains × 1,000 after 1,000 burn-in), one run per seed: wall time, the largest
R-hat and the smallest bulk ESS of the scalars the test bounds, per scalar.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.horseshoe_gibbs_mixing 4 101 102 103 104

``--module PATH`` (first) runs another version of bayeslmm/inference/horseshoe_gibbs.py instead,
e.g. ``git show 2e32445:bayeslmm/inference/horseshoe_gibbs.py > /tmp/before.py`` (the sampler
before the compiled sweep and the adapted τ direction).
"""

from __future__ import annotations

import sys
import time
import warnings

import arviz_stats as azs
import numpy as np

import bayeslmm as bl
from tests.test_sparse import SCALARS, _planted

DRAWS = 1000


def run(seed: int, draws: int = DRAWS) -> dict[str, float]:
    """One recovery fit; wall time, max R-hat and min ESS over the bounded scalars."""
    y, W, causal, *_ = _planted()
    model = bl.snp_model(y, W, marginalize=False, prior="horseshoe")
    start, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.SamplingWarning)
        idata = bl.sample(
            model,
            draws=draws,
            tune=draws,
            chains=2,
            random_seed=seed,
            progressbar=False,
            sampler="gibbs",
        )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    post = idata["posterior"].to_dataset()
    names = list(SCALARS["horseshoe"])
    rhat = azs.rhat(post[names])
    ess = azs.ess(post[names])
    out = {"seed": seed, "wall_s": wall, "cpu_s": cpu}
    for name in names:
        out[f"rhat_{name}"] = float(rhat[name].max())
        out[f"ess_{name}"] = float(ess[name].min())
    pip = post["pip"].mean(("chain", "draw")).values
    out["pip_causal_min"] = float(pip[causal].min())
    out["pip_other_max"] = float(np.delete(pip, causal).max())
    return out


def use_module(path: str) -> None:
    """Run the sampler of another version of horseshoe_gibbs.py (e.g. from ``git show``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("horseshoe_gibbs_other", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    sys.modules["bayeslmm.inference.horseshoe_gibbs"] = module


def main(seeds: list[int]) -> None:
    for seed in seeds:
        r = run(seed)
        worst = max((k for k in r if k.startswith("rhat_")), key=r.get)
        least = min((k for k in r if k.startswith("ess_")), key=r.get)
        print(
            f"seed {seed}: wall {r['wall_s']:.1f} s, CPU {r['cpu_s']:.1f} s, "
            f"max R-hat {r[worst]:.4f} ({worst[5:]}), "
            f"min ESS {r[least]:.0f} ({least[4:]}), R-hat tau {r['rhat_tau']:.4f}, "
            f"ESS tau {r['ess_tau']:.0f}, pip causal >= {r['pip_causal_min']:.2f}, "
            f"others <= {r['pip_other_max']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--module"]:
        use_module(args[1])
        args = args[2:]
    main([int(s) for s in args] or [4])
