"""A PCA reducer's scaler folded into one float32 projection stays within its float32 rounding bound.

``Reducer.projection`` turns scikit-learn's ``((x - m) / s - μ) @ Cᵀ`` into ``x @ W + b`` with
``W = Cᵀ / s`` and ``b = -(m / s + μ) @ Cᵀ``, folded in float64 and rounded to float32. The bound,
per output, from float32 arithmetic (Higham 2002; ``tests/tolerance_support.py``), with ``Ŵ, b̂`` the
float32 roundings of ``W, b`` (relative error ≤ u each) and ``ŷ = fl(fl(x @ Ŵ) + b̂)``:

- the dot product of length D, in any order, with or without FMA: ``|fl(x @ Ŵ) - x @ Ŵ| ≤ γ_D |x| @ |Ŵ|``;
- rounding W: ``|x @ Ŵ - x @ W| ≤ u |x| @ |W|`` and ``|Ŵ| ≤ (1 + u) |W|``;
- the bias: ``|b̂ - b| ≤ u |b|``, and the addition one more rounding of at most u of ``|fl(x @ Ŵ) + b̂|``;

so ``|ŷ - y| ≤ γ_{D+2} (|x| @ |W| + |b|)`` (γ_D (1 + u) + u ≤ γ_{D+1}, and the addition's u on top
gives γ_{D+2}). The reference y is the unfolded formula evaluated in float64 from the same float32
inputs, off itself by at most ``γ_{D+4}`` in float64 of its own terms' magnitudes, added to the bound.
"""
import numpy as np
import pytest
from sklearn.decomposition import PCA, IncrementalPCA
from sklearn.preprocessing import StandardScaler

from sea_tf.reduce import Reducer
from tolerance_support import gamma

U64 = float(np.finfo(np.float64).eps) / 2


def _embeddings(n, dim=512, seed=0):
    """Teacher-like rows: low-rank + noise, features offset from 0 (0..4) and of scales 0.14..2.7."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 16)) @ rng.normal(size=(16, dim)) + 0.3 * rng.normal(size=(n, dim))
    return (rng.uniform(0, 4, size=dim) + np.exp(rng.uniform(-2, 1, size=dim)) * z).astype(np.float32)


def _reducer(x, solver, d=64, pca_rows=None):
    """Scaler on every row of ``x``; PCA on the first ``pca_rows`` scaled rows (μ ≠ 0 then)."""
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x[:pca_rows])
    model = {"exact": PCA(n_components=d, svd_solver="full", random_state=0),
             "incremental": IncrementalPCA(n_components=d, batch_size=512),
             "whiten": PCA(n_components=d, svd_solver="full", whiten=True, random_state=0)}[solver].fit(xs)
    return Reducer("pca", d, scaler=scaler, model=model)


def _unfolded64(reducer, x):
    """scikit-learn's formula ``((x - m) / s - μ) @ Cᵀ`` (÷ √variance when whitened) in float64."""
    scaler, model = reducer.scaler, reducer.model
    components = model.components_.astype(np.float64)
    if model.whiten:
        components = components / np.sqrt(model.explained_variance_.astype(np.float64))[:, None]
    centred = (x.astype(np.float64) - scaler.mean_) / scaler.scale_ - model.mean_
    reference_error = gamma(x.shape[1] + 4, U64) * (
        ((np.abs(x) + np.abs(scaler.mean_)) / scaler.scale_ + np.abs(model.mean_)) @ np.abs(components.T))
    return centred @ components.T, reference_error


def _bound(reducer, x):
    """``γ_{D+2} (|x| @ |W| + |b|)`` per output (module docstring), W and b the float64 fold."""
    scaler, model = reducer.scaler, reducer.model
    components = model.components_.astype(np.float64)
    if model.whiten:
        components = components / np.sqrt(model.explained_variance_.astype(np.float64))[:, None]
    weight = components.T / scaler.scale_[:, None]
    bias = -((scaler.mean_ / scaler.scale_ + model.mean_) @ components.T)
    return gamma(x.shape[1] + 2) * (np.abs(x.astype(np.float64)) @ np.abs(weight) + np.abs(bias))


@pytest.mark.parametrize("solver,pca_rows", [("exact", None), ("incremental", None), ("exact", 500), ("whiten", 500)])
def test_folded_projection_is_within_its_float32_rounding_bound(solver, pca_rows):
    fit_rows, new_rows = _embeddings(3000, seed=0), _embeddings(1024, seed=1)
    reducer = _reducer(fit_rows, solver, pca_rows=pca_rows)
    projection = reducer.projection()
    assert projection.weight.dtype == projection.bias.dtype == np.float32 and projection.weight.shape == (512, 64)
    for x in (fit_rows, new_rows):
        got = reducer.transform(x)
        expected, reference_error = _unfolded64(reducer, x)
        bound = _bound(reducer, x) + reference_error
        assert got.dtype == np.float32 and got.shape == (len(x), 64)
        worst = np.abs(got - expected) / bound
        assert worst.max() <= 1, f"{worst.max():.2f} × the rounding bound at {np.unravel_index(worst.argmax(), worst.shape)}"
        # The bound is no blanket: under 1e-4 of the targets' scale (5e-5 here), so a fold off by that
        # much fails. Whitening divides each component by √variance (down to ~0.1 here), which
        # magnifies the inputs' rounding against the targets' unit scale: 2e-3 here.
        assert bound.max() < (1e-2 if solver == "whiten" else 1e-4) * np.abs(expected).max()


def test_a_fold_without_the_pca_mean_is_caught_by_the_bound():
    """Negative control: ``b = -(m / s) @ W`` (the scaler's mean only) is right only while the PCA's own mean
    μ is 0; fitted on part of the rows (IncrementalPCA's batches, a sample), μ ≠ 0 and the bound catches it."""
    x = _embeddings(3000)
    reducer = _reducer(x, "exact", pca_rows=500)
    assert np.abs(reducer.model.mean_).max() > 0.01
    scaler, components = reducer.scaler, reducer.model.components_.astype(np.float64)
    weight = components.T / scaler.scale_[:, None]
    wrong = (x.astype(np.float64) @ weight - (scaler.mean_ / scaler.scale_) @ components.T).astype(np.float32)
    expected, reference_error = _unfolded64(reducer, x)
    assert (np.abs(wrong - expected) > _bound(reducer, x) + reference_error).any()


def test_umap_and_none_have_no_projection():
    x = _embeddings(200, dim=16)
    assert Reducer("none", 16).projection() is None
    assert Reducer("umap", 2, scaler=StandardScaler().fit(x), model=object()).projection() is None
