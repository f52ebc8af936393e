"""One positional-ID convention: plain arrays are samples "1".."N", in every entry point."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import bayeslmm as bl
from bayeslmm.data.samples import positional_ids
from bayeslmm.relatedness.grm import as_genotypes

N = 24


@pytest.fixture(scope="module")
def cohort():
    rng = np.random.default_rng(20261210)
    G = rng.binomial(2, rng.uniform(0.1, 0.5, 120), size=(N, 120)).astype(float)
    W = (G - G.mean(0)) / G.std(0)
    y = W[:, :30].sum(1) / np.sqrt(30) + rng.normal(size=N)
    X = rng.normal(size=(N, 2))
    return G, y, X


def test_positional_ids__count_from_one():
    assert positional_ids(3).tolist() == ["1", "2", "3"]
    G = np.random.default_rng(0).binomial(2, 0.3, size=(5, 8)).astype(float)
    assert bl.kinship(G, method="centered").samples.tolist() == ["1", "2", "3", "4", "5"]
    assert bl.pcs(G, 2).index.tolist() == ["1", "2", "3", "4", "5"]
    assert as_genotypes(G).samples.tolist() == ["1", "2", "3", "4", "5"]


def test_reml__pcs_of_plain_genotypes_equal_hand_aligned(cohort):
    # the measured bug: pcs numbered "0".."N-1", the kinship "1".."N" -> covariates shifted by one
    G, y, _ = cohort
    K = bl.kinship(G, method="centered")
    pcs = bl.pcs(G, 2)
    fit = bl.reml(y, K, pcs)
    ref = bl.reml(y, K.matrix, pcs.to_numpy())
    assert fit.n == ref.n == N
    assert fit.h2 == pytest.approx(ref.h2, abs=1e-10)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-10)
    np.testing.assert_allclose(fit.beta.to_numpy(), ref.beta.to_numpy(), atol=1e-10)


def test_scan__pcs_of_plain_genotypes_equal_hand_aligned(cohort):
    G, y, _ = cohort
    table = bl.scan(G, y, X=bl.pcs(G, 3), loco=False, progress=False)
    ref = bl.scan(G, y, X=bl.pcs(G, 3).to_numpy(), loco=False, progress=False)
    assert (table["n"] == N).all()
    np.testing.assert_allclose(table["beta"], ref["beta"], atol=1e-10, equal_nan=True)
    np.testing.assert_allclose(table["p_wald"], ref["p_wald"], atol=1e-10, equal_nan=True)


def test_reml__default_pandas_index_beside_positional_ids(cohort):
    G, y, _ = cohort
    K = bl.kinship(G, method="centered")
    with pytest.raises(
        bl.InputError,
        match=r"y is numbered from 0 \(pandas' default index\) and K from 1.*"
        r"\.to_numpy\(\)",
    ):
        bl.reml(pd.Series(y), K)


def test_reml__dropped_samples_are_named(cohort):
    G, y, X = cohort
    K = bl.kinship(G, method="centered")
    y = pd.Series(y, index=K.samples)
    y.iloc[[4]] = np.nan
    X = pd.DataFrame(X, index=K.samples).iloc[2:]
    with pytest.warns(
        bl.DataWarning,
        match=r"analysing 21 samples; dropped 3: 2 not in X \['1', '2'\]; 1 missing y \['5'\]\. "
        r"Samples are matched by ID .*\(plain arrays\) are matched by position and numbered '1'",
    ):
        fit = bl.reml(y, K, X)
    assert fit.n == 21


# ----------------------------------------------------------------------------------------------
# Property: any mixture of ID-carrying and plain inputs gives the fit of hand-aligned arrays
# ----------------------------------------------------------------------------------------------

UNIVERSE = positional_ids(N)  # IDs "1".."N", the positional ones: mixtures must not shift


@st.composite
def mixtures(draw):
    forms = {
        "K": draw(st.sampled_from(["array", "frame", "kinship", "genotypes", "kinship_plain"])),
        "y": draw(st.sampled_from(["array", "series"])),
        "X": draw(st.sampled_from(["none", "array", "frame", "pcs_genotypes", "pcs_plain"])),
    }
    subsets = {
        name: draw(st.permutations(range(N)))[: draw(st.integers(N - 3, N))] for name in forms
    }
    strangers = draw(st.integers(0, 2))
    nan_y = draw(st.lists(st.integers(0, N - 1), max_size=2, unique=True))
    return forms, subsets, strangers, nan_y


def _kinship_frame(K):
    if isinstance(K, pd.DataFrame):
        return K
    return pd.DataFrame(K.matrix, index=K.samples, columns=K.samples)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=mixtures())
def test_reml__any_mixture_of_inputs_equals_hand_aligned(cohort, case):
    forms, subsets, strangers, nan_y = case
    G, y_all, X_all = cohort
    y_all = y_all.copy()
    y_all[nan_y] = np.nan
    full = bl.kinship(G, method="centered")
    universe = pd.Index(UNIVERSE)
    # ID-carrying versions of every input (a permuted subset of the cohort)
    rows = {name: np.asarray(r) for name, r in subsets.items()}
    ids = {name: universe[r] for name, r in rows.items()}
    K_frame = pd.DataFrame(full.matrix, index=universe, columns=universe)
    carriers = {
        "K": {
            "frame": K_frame.iloc[rows["K"], rows["K"]],
            "kinship": bl.Kinship(
                matrix=full.matrix[np.ix_(rows["K"], rows["K"])], samples=ids["K"].to_numpy()
            ),
            "genotypes": bl.kinship(
                as_genotypes(G[rows["K"]], samples=ids["K"]), method="centered"
            ),
        },
        "y": {
            "series": pd.concat(
                [
                    pd.Series(y_all[rows["y"]], index=ids["y"]),
                    pd.Series(
                        np.arange(strangers, dtype=float), index=[f"x{i}" for i in range(strangers)]
                    ),
                ]
            )
        },
        "X": {
            "frame": pd.DataFrame(X_all[rows["X"]], index=ids["X"], columns=["a", "b"]),
            "pcs_genotypes": bl.pcs(as_genotypes(G[rows["X"]], samples=ids["X"]), 2),
        },
    }
    # bl.kinship and bl.pcs of the plain genotype array: positional IDs "1".."N" (whole cohort)
    positional = {"kinship_plain", "pcs_plain"}
    if positional & set(forms.values()):
        assume(all(form in positional | {"array", "none"} for form in forms.values()))
    carriers["K"]["kinship_plain"] = full
    carriers["X"]["pcs_plain"] = bl.pcs(G, 2)
    given_ = {name: carriers[name].get(form) for name, form in forms.items()}
    reference = next((n for n in ("K", "y", "X") if given_[n] is not None), None)
    if reference is None:  # all plain: positional, the whole cohort in file order
        order = universe
    elif reference == "K":
        order = pd.Index(_kinship_frame(given_["K"]).index)
    elif reference == "y":
        order = given_["y"].index
    else:
        order = given_["X"].index
    # plain arrays: aligned by position with the reference, so in its order and of its length
    in_order = universe.get_indexer(order)
    plain = [name for name, form in forms.items() if form == "array"]
    # a plain array has no rows for strangers in the reference (y's extra IDs): not a mixture
    assume(not plain or (in_order >= 0).all())
    if forms["K"] == "array":
        given_["K"] = full.matrix[np.ix_(in_order, in_order)]
    if forms["y"] == "array":
        given_["y"] = y_all[in_order]
    if forms["X"] == "array":
        given_["X"] = X_all[in_order]
    # the hand-aligned arrays: reference order, samples in every ID-carrying input, complete
    keep = [
        s
        for s in order
        if all(
            s in (_kinship_frame(v).index if n == "K" else v.index)
            for n, v in given_.items()
            if isinstance(v, pd.DataFrame | pd.Series | bl.Kinship)
        )
    ]
    K_by_id = (
        _kinship_frame(given_["K"])
        if forms["K"] != "array"
        else pd.DataFrame(given_["K"], index=order, columns=order)
    )
    y_by_id = given_["y"] if forms["y"] == "series" else pd.Series(given_["y"], index=order)
    X_by_id = (
        None
        if given_["X"] is None
        else given_["X"]
        if isinstance(given_["X"], pd.DataFrame)
        else pd.DataFrame(given_["X"], index=order)
    )
    keep = [s for s in keep if not np.isnan(y_by_id[s])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.DataWarning)
        fit = bl.reml(given_["y"], given_["K"], given_["X"])
    ref = bl.reml(
        y_by_id[keep].to_numpy(),
        K_by_id.loc[keep, keep].to_numpy(),
        None if X_by_id is None else X_by_id.loc[keep].to_numpy(),
    )
    assert fit.n == ref.n == len(keep)
    assert fit.h2 == pytest.approx(ref.h2, abs=1e-10)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-10)
    np.testing.assert_allclose(fit.beta.to_numpy(), ref.beta.to_numpy(), atol=1e-9)
