"""NUTS in tests: divergences are counted and bounded by the test, never fatal one by one.

Under ``filterwarnings = error`` a single divergent transition (a SamplingWarning) would fail a
test, and whether one happens in a few thousand transitions is a matter of the last bits of
floating point on a given machine. Tests that run NUTS call :func:`sample_counted`: it lets
through only bayeslmm's warning that names divergences *alone* (an R-hat problem in the same
message still fails), then asserts the count is at most ``max_divergent`` — a fraction of the
draws small enough not to bias the checks that follow.
"""

import warnings

import bayeslmm as bl

#: The SamplingWarning of bl.sample when divergences are the only problem.
DIVERGENCES_ONLY = r"sampling problems: \d+ divergent transitions\. "


def sample_counted(model, *, max_divergent=None, **kwargs):
    """bl.sample(model, **kwargs) with at most ``max_divergent`` divergences (default 0.5 %)."""
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DIVERGENCES_ONLY, bl.SamplingWarning)
        idata = bl.sample(model, **kwargs)
    stats = idata["sample_stats"]
    total = stats.sizes["chain"] * stats.sizes["draw"]
    limit = total // 200 if max_divergent is None else max_divergent
    n_div = int(stats["diverging"].sum())
    assert n_div <= limit, f"{n_div} divergent transitions of {total} (at most {limit})"
    return idata
