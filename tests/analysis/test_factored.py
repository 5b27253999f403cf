"""FactoredMatrix against the dense matrix it stands for; OV/QK and composition scores."""

from __future__ import annotations

import pytest
import torch

import hooklens as hl
from hooklens.analysis import FactoredMatrix, composition_scores
from tests.analysis.conftest import with_random_biases


def _close(a, b, tol=1e-4):
    torch.testing.assert_close(a, b, atol=tol, rtol=tol)


@pytest.fixture
def fm() -> FactoredMatrix:
    torch.manual_seed(0)
    return FactoredMatrix(
        torch.randn(3, 6, 2, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    )


def test_shapes_products_and_transpose(fm):
    dense = fm.A @ fm.B
    assert fm.shape == (3, 6, 5) and (fm.ldim, fm.mdim, fm.rdim) == (6, 2, 5) and fm.ndim == 3
    assert fm.has_leading_dims and fm.A.shape == (3, 6, 2) and fm.B.shape == (3, 2, 5)
    _close(fm.AB, dense)
    _close(fm.T.AB, dense.transpose(-2, -1))
    m = torch.randn(5, 4, dtype=torch.float64)
    _close((fm @ m).AB, dense @ m)
    assert isinstance(fm @ m, FactoredMatrix)
    vec = torch.randn(5, dtype=torch.float64)
    _close(fm @ vec, dense @ vec)
    left = torch.randn(4, 6, dtype=torch.float64)
    _close((left @ fm).AB, left @ dense)
    _close(torch.randn(6, dtype=torch.float64).new_ones(6) @ fm, dense.sum(-2))
    other = FactoredMatrix(
        torch.randn(5, 3, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    )
    _close((fm @ other).AB, dense @ other.AB)
    _close((fm * 2.5).AB, dense * 2.5)
    _close((2.5 * fm).AB, dense * 2.5)
    assert fm.pair[0] is fm.A
    _close(fm.unsqueeze(0).AB, dense[None])
    _close(fm.get_corner(2), dense[:2, :2, :2])
    with pytest.raises(ValueError, match="inner dimension"):
        FactoredMatrix(torch.randn(4, 3), torch.randn(2, 4))
    with pytest.raises(ValueError, match="second to last size must be 5"):
        fm @ torch.randn(4, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="ldim == rdim"):
        _ = fm.BA
    with pytest.raises(ValueError, match="scalar"):
        fm * torch.ones(3)


def test_svd_norm_eigenvalues(fm):
    dense = fm.AB
    U, S, V = fm.svd()
    assert U.shape == (3, 6, 2) and S.shape == (3, 2) and V.shape == (3, 5, 2)
    _close(U @ torch.diag_embed(S) @ V.transpose(-2, -1), dense)
    _close(S, torch.linalg.svdvals(dense)[..., :2])
    _close(U.transpose(-2, -1) @ U, torch.eye(2, dtype=torch.float64).expand(3, 2, 2))
    assert fm.Vh is fm.V  # TransformerLens's Vh is V
    _close(fm.norm(), dense.norm(dim=(-2, -1)))
    _close(fm.make_even().AB, dense)
    _close(fm.collapse_l(), torch.diag_embed(S) @ V.transpose(-2, -1))
    _close(fm.collapse_r(), U @ torch.diag_embed(S))
    square = FactoredMatrix(
        torch.randn(6, 2, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    )
    eig = square.eigenvalues
    assert eig.shape == (2,) and eig.is_complex()
    full = torch.linalg.eigvals(square.AB)
    top = full[full.abs().argsort(descending=True)[:2]]
    _close(eig[eig.abs().argsort(descending=True)], top)
    _close(square.BA, square.B @ square.A)


def test_indexing(fm):
    dense = fm.AB
    _close(fm[1].AB, dense[1])
    _close(fm[0:2].AB, dense[0:2])
    _close(fm[1, 2:4].AB, dense[1, 2:4])
    _close(fm[1, 3].AB, dense[1, 3:4])  # an int keeps its dimension, as in TransformerLens
    _close(fm[1, :, 4].AB, dense[1, :, 4:5])
    _close(fm[2, -1, -1].AB, dense[2, -1:, -1:])
    with pytest.raises(IndexError, match="too long"):
        fm[0, 0, 0, 0]


def test_ov_qk_and_composition_scores():
    model = with_random_biases("llama")
    w = model.weights.layer(1)
    ov, qk = model.OV, model.QK
    assert ov.shape == qk.shape == (2, 4, 32, 32) and ov.mdim == 8
    _close(ov[1, 2].AB, w.W_V[2] @ w.W_O[2])
    _close(qk[1, 3].AB, w.W_Q[3] @ w.W_K[3].T)
    for mode, right in (("Q", qk), ("K", qk.T), ("V", ov)):
        scores = model.all_composition_scores(mode)
        assert scores.shape == (2, 4, 2, 4)
        a, b = ov[0, 1].AB, right[1, 2].AB
        expected = (a @ b).norm() / (a.norm() * b.norm())
        _close(scores[0, 1, 1, 2], expected)
        assert scores[1, 0, 0, 0] == 0 and scores[0, 0, 0, 1] == 0  # same or earlier layer
    pair = composition_scores(ov[0], qk[1])
    assert pair.shape == (4, 4)
    _close(pair[1, 2], model.all_composition_scores("Q")[0, 1, 1, 2])
    paired = composition_scores(ov[0], qk[1], broadcast_dims=False)  # head h with head h
    _close(paired, torch.diagonal(pair))
    with pytest.raises(ValueError, match="mode"):
        model.all_composition_scores("X")
    assert hl.FactoredMatrix is FactoredMatrix
