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
#: ... when R-hat above 1.01 (and perhaps divergences) are the only problems.
RHAT_ONLY = r"sampling problems: (\d+ divergent transitions; )?(R-hat of [^;]* > 1\.01(; )?)+\. "


def sample_counted(model, *, max_divergent=None, max_rhat=None, **kwargs):
    """bl.sample(model, **kwargs) with at most ``max_divergent`` divergences (default 0.5 %).

    ``max_rhat``: the test's own bound on the R-hat of the variables bl.sample checks, for a
    test with few draws whose R-hat may cross bl.sample's 1.01 by Monte Carlo error alone
    (its warning then lets through; the bound is asserted here).
    """
    kwargs.setdefault("progressbar", False)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DIVERGENCES_ONLY, bl.SamplingWarning)
        if max_rhat is not None:
            warnings.filterwarnings("ignore", RHAT_ONLY, bl.SamplingWarning)
        idata = bl.sample(model, **kwargs)
    if max_rhat is not None:
        import arviz_stats as azs

        for name in ("h2", "sigma_e2"):
            if name in idata["posterior"]:
                rhat = float(azs.rhat(idata["posterior"][name]).max())
                assert rhat <= max_rhat, f"R-hat of {name} = {rhat:.4f} > {max_rhat}"
    stats = idata["sample_stats"]
    total = stats.sizes["chain"] * stats.sizes["draw"]
    limit = total // 200 if max_divergent is None else max_divergent
    n_div = int(stats["diverging"].sum())
    assert n_div <= limit, f"{n_div} divergent transitions of {total} (at most {limit})"
    return idata
