"""`FactoredMatrix`: a (..., ldim, rdim) matrix kept as the product A @ B of two thin factors.

Follows TransformerLens's `FactoredMatrix` (names, shapes and meanings): `A` (..., ldim, mdim),
`B` (..., mdim, rdim), leading dimensions broadcast; `svd()` returns (U, S, V) with
`M = U @ diag(S) @ V.transpose(-2, -1)`, computed from the factors without forming `AB`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import torch


def _t(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-2, -1)


class FactoredMatrix:
    """A low-rank matrix `A @ B` with cheap SVD, eigenvalues, norm, products and indexing."""

    def __init__(self, A: torch.Tensor, B: torch.Tensor) -> None:
        if A.ndim < 2 or B.ndim < 2:
            raise ValueError(
                f"FactoredMatrix factors need at least 2 dims, got A {tuple(A.shape)} and "
                f"B {tuple(B.shape)}"
            )
        if A.shape[-1] != B.shape[-2]:
            raise ValueError(
                f"FactoredMatrix factors must match on the inner dimension: A {tuple(A.shape)}, "
                f"B {tuple(B.shape)} (A's last size must equal B's second to last)"
            )
        self.ldim = A.shape[-2]
        self.rdim = B.shape[-1]
        self.mdim = B.shape[-2]
        self.has_leading_dims = A.ndim > 2 or B.ndim > 2
        try:
            lead = torch.broadcast_shapes(A.shape[:-2], B.shape[:-2])
        except RuntimeError as exc:
            raise ValueError(
                f"FactoredMatrix leading dimensions do not broadcast: A {tuple(A.shape)}, "
                f"B {tuple(B.shape)}"
            ) from exc
        self.shape = torch.Size((*lead, self.ldim, self.rdim))
        self.A = A.broadcast_to((*lead, self.ldim, self.mdim))
        self.B = B.broadcast_to((*lead, self.mdim, self.rdim))

    # -- products --------------------------------------------------------------------------------
    def __matmul__(self, other: Any) -> Any:
        """`self @ other`: a FactoredMatrix for a matrix or FactoredMatrix, a tensor (..., ldim)
        for a vector (rdim,)."""
        if isinstance(other, FactoredMatrix):
            return (self @ other.A) @ other.B
        if not isinstance(other, torch.Tensor):
            return NotImplemented
        if other.ndim < 2:
            return (self.A @ (self.B @ other.unsqueeze(-1))).squeeze(-1)
        if other.shape[-2] != self.rdim:
            raise ValueError(
                f"cannot multiply a FactoredMatrix of shape {tuple(self.shape)} by a tensor of "
                f"shape {tuple(other.shape)}: its second to last size must be {self.rdim}"
            )
        if self.rdim > self.mdim:
            return FactoredMatrix(self.A, self.B @ other)
        return FactoredMatrix(self.AB, other)

    def __rmatmul__(self, other: Any) -> Any:
        """`other @ self`: a FactoredMatrix for a matrix, a tensor (..., rdim) for a vector."""
        if isinstance(other, FactoredMatrix):  # pragma: no cover - __matmul__ handles it
            return other.A @ (other.B @ self)
        if not isinstance(other, torch.Tensor):
            return NotImplemented
        if other.shape[-1] != self.ldim:
            raise ValueError(
                f"cannot multiply a tensor of shape {tuple(other.shape)} by a FactoredMatrix of "
                f"shape {tuple(self.shape)}: its last size must be {self.ldim}"
            )
        if other.ndim < 2:
            return ((other.unsqueeze(-2) @ self.A) @ self.B).squeeze(-2)
        if self.ldim > self.mdim:
            return FactoredMatrix(other @ self.A, self.B)
        return FactoredMatrix(other, self.AB)

    def __mul__(self, scalar: float | torch.Tensor) -> FactoredMatrix:
        """Multiply by a scalar (applied to A)."""
        if isinstance(scalar, torch.Tensor) and scalar.numel() != 1:
            raise ValueError(
                f"`*` takes a scalar, got a tensor of shape {tuple(scalar.shape)}; "
                "use `@` for matrix products"
            )
        return FactoredMatrix(self.A * scalar, self.B)

    __rmul__ = __mul__

    @property
    def AB(self) -> torch.Tensor:
        """The full product (..., ldim, rdim) (may be large)."""
        return self.A @ self.B

    @property
    def BA(self) -> torch.Tensor:
        """The reverse product (..., mdim, mdim); only for square matrices (ldim == rdim)."""
        if self.ldim != self.rdim:
            raise ValueError(f"BA needs ldim == rdim; this matrix is {tuple(self.shape)}")
        return self.B @ self.A

    @property
    def T(self) -> FactoredMatrix:
        """The transpose (..., rdim, ldim), still factored."""
        return FactoredMatrix(_t(self.B), _t(self.A))

    # -- decompositions ----------------------------------------------------------------------------
    @cached_property
    def _svd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ua, sa, vha = torch.linalg.svd(self.A, full_matrices=False)
        ub, sb, vhb = torch.linalg.svd(self.B, full_matrices=False)
        middle = sa[..., :, None] * (vha @ ub) * sb[..., None, :]
        um, sm, vhm = torch.linalg.svd(middle, full_matrices=False)
        return ua @ um, sm, _t(vhb) @ _t(vhm)

    def svd(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(U (..., ldim, mdim), S (..., mdim), V (..., rdim, mdim)) with
        `AB == U @ S.diag_embed() @ V.transpose(-2, -1)` (computed once, then kept)."""
        return self._svd

    @property
    def U(self) -> torch.Tensor:
        """Left singular vectors (..., ldim, mdim)."""
        return self._svd[0]

    @property
    def S(self) -> torch.Tensor:
        """Singular values (..., mdim), descending."""
        return self._svd[1]

    @property
    def V(self) -> torch.Tensor:
        """Right singular vectors (..., rdim, mdim)."""
        return self._svd[2]

    @property
    def Vh(self) -> torch.Tensor:
        """TransformerLens's name for `V` (it is V, (..., rdim, mdim), not its transpose)."""
        return self._svd[2]

    @property
    def eigenvalues(self) -> torch.Tensor:
        """Eigenvalues (..., mdim), complex: those of BA, which are AB's non-zero ones."""
        ba = self.BA
        if ba.dtype in (torch.float16, torch.bfloat16):
            ba = ba.float()
        return torch.linalg.eigvals(ba)

    def norm(self) -> torch.Tensor:
        """The Frobenius norm (...,): sqrt of the sum of squared singular values."""
        return self.S.pow(2).sum(-1).sqrt()

    def make_even(self) -> FactoredMatrix:
        """The same matrix factored as (U sqrt(S), sqrt(S) V^T): both halves balanced."""
        root = self.S.sqrt()
        return FactoredMatrix(self.U * root[..., None, :], root[..., :, None] * _t(self.V))

    def collapse_l(self) -> torch.Tensor:
        """S V^T (..., mdim, rdim): the matrix with its left orthogonal factor removed."""
        return self.S[..., :, None] * _t(self.V)

    def collapse_r(self) -> torch.Tensor:
        """U S (..., ldim, mdim): the matrix with its right orthogonal factor removed."""
        return self.U * self.S[..., None, :]

    # -- shape -------------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def pair(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, B)."""
        return self.A, self.B

    def unsqueeze(self, k: int) -> FactoredMatrix:
        """Insert a leading dimension of size 1 at `k` (k counts leading dims only)."""
        return FactoredMatrix(self.A.unsqueeze(k), self.B.unsqueeze(k))

    def get_corner(self, k: int = 3) -> torch.Tensor:
        """The top-left k x k corner of AB (for every leading index, each also cut to k)."""
        corner = self.A[..., :k, :] @ self.B[..., :, :k]
        return corner[tuple(slice(k) for _ in range(corner.ndim))]

    def __getitem__(self, idx: Any) -> FactoredMatrix:
        """Index the leading dimensions; an index one or two longer also picks rows / columns
        (an int keeps its dimension, as in TransformerLens)."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        n_lead = self.ndim - 2
        length = len([i for i in idx if i is not None])
        if length <= n_lead:
            return FactoredMatrix(self.A[idx], self.B[idx])
        if length == n_lead + 1:
            idx = _keep_dim(idx, -1)
            return FactoredMatrix(self.A[idx], self.B[idx[:-1]])
        if length == n_lead + 2:
            idx = _keep_dim(_keep_dim(idx, -1), -2)
            return FactoredMatrix(self.A[idx[:-1]], self.B[(*idx[:-2], slice(None), idx[-1])])
        raise IndexError(f"{idx} is too long an index for a FactoredMatrix of shape {self.shape}")

    def __repr__(self) -> str:
        return f"FactoredMatrix: Shape({self.shape}), Hidden Dim({self.mdim})"


def _keep_dim(idx: tuple[Any, ...], pos: int) -> tuple[Any, ...]:
    """Turn an int at `pos` into a one-element slice, so the dimension survives."""
    value = idx[pos]
    if not isinstance(value, int):
        return idx
    items = list(idx)
    items[pos] = slice(value, value + 1 if value != -1 else None)
    return tuple(items)


def composition_scores(
    left: FactoredMatrix, right: FactoredMatrix, broadcast_dims: bool = True
) -> torch.Tensor:
    """||left @ right||_F / (||left||_F ||right||_F) for every pair of matrices.

    With `broadcast_dims`, left's leading dims come first and right's after them, e.g.
    (n_layers, n_heads) x (n_layers, n_heads) -> (n_layers, n_heads, n_layers, n_heads);
    else the leading dims broadcast against each other. `left.rdim` must equal `right.ldim`.
    Each side's SVD is taken once, before broadcasting, and the products are formed one left
    matrix at a time, so memory stays at (right's leading dims, mdim, mdim).
    """
    if left.rdim != right.ldim:
        raise ValueError(
            f"composition scores need left.rdim == right.ldim; shapes were {tuple(left.shape)} "
            f"and {tuple(right.shape)}"
        )
    new_left = left.collapse_l()  # (*l_lead, mdim_l, d)
    new_right = right.collapse_r()  # (*r_lead, d, mdim_r)
    l_norms = new_left.norm(dim=(-2, -1))
    r_norms = new_right.norm(dim=(-2, -1))
    if not broadcast_dims:
        return (new_left @ new_right).norm(dim=(-2, -1)) / r_norms / l_norms
    l_lead, r_lead = new_left.shape[:-2], new_right.shape[:-2]
    flat_left = new_left.reshape(-1, *new_left.shape[-2:])
    comp = torch.stack([(m @ new_right).norm(dim=(-2, -1)) for m in flat_left])
    comp = comp.reshape(*l_lead, *r_lead)
    l_norms = l_norms.reshape(*l_lead, *([1] * len(r_lead)))
    return comp / r_norms / l_norms
