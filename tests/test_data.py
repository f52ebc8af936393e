"""Sample alignment by ID and by position."""

import numpy as np
import pandas as pd
import pytest

import bayeslmm as bl


@pytest.fixture
def frames(small):
    ids = small.samples
    K = pd.DataFrame(small.K, index=ids, columns=ids)
    y = pd.Series(small.y, index=ids, name="y")
    X = pd.DataFrame(small.X, index=ids, columns=["age"])
    return y, K, X


def test_reml__shuffled_pandas_inputs_equal_arrays(small, frames):
    y, K, X = frames
    ref = bl.reml(small.y, small.K, small.X)
    order = np.random.default_rng(1).permutation(len(y))
    fit = bl.reml(y.iloc[order], K, X.iloc[order[::-1]])
    assert fit.h2 == pytest.approx(ref.h2, abs=1e-8)
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)
    assert list(fit.beta.index) == ["intercept", "age"]


def test_reml__missing_and_extra_samples_equal_hand_aligned(small, frames):
    y, K, X = frames
    y = y.copy()
    y.iloc[[0, 3]] = np.nan
    extra = pd.Series([1.0, 2.0], index=["stranger1", "stranger2"], name="y")
    y_more = pd.concat([y, extra])
    X_less = X.drop(index=X.index[5])
    with pytest.warns(
        bl.DataWarning,
        match=(
            r"analysing 37 samples; dropped 5: 2 in y but not in K \['stranger1', 'stranger2'\]; "
            r"1 not in X \['id6'\]; 2 missing y \['id1', 'id4'\]"
        ),
    ):
        fit = bl.reml(y_more, K, X_less)
    keep = np.setdiff1d(np.arange(40), [0, 3, 5])
    ref = bl.reml(small.y[keep], small.K[np.ix_(keep, keep)], small.X[keep])
    assert fit.n == ref.n == 37
    assert fit.h2 == pytest.approx(ref.h2, abs=1e-8)


def test_reml__no_shared_ids(frames):
    y, K, _ = frames
    y = y.copy()
    y.index = [f"x{i}" for i in range(len(y))]
    with pytest.raises(bl.InputError, match="no sample ID is shared"):
        bl.reml(y, K)


def test_reml__duplicated_ids(frames):
    y, K, _ = frames
    y = y.copy()
    y.index = ["a"] * 2 + list(y.index[2:])
    with pytest.raises(bl.InputError, match="duplicated sample IDs \\['a'\\]"):
        bl.reml(y, K)


def test_reml__x_spanning_constant_gets_no_intercept(small):
    sex = (np.arange(40) % 2).astype(float)
    X = pd.DataFrame({"male": sex, "female": 1 - sex})
    fit = bl.reml(small.y, small.K, X)
    assert list(fit.beta.index) == ["male", "female"]
    ref = bl.reml(small.y, small.K, sex)  # same column space
    assert fit.loglik == pytest.approx(ref.loglik, abs=1e-8)
