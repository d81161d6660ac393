"""The fixed subspace of the low-rank parametrisation (optim.parametrisation low_rank).

    from memcap.core.parametrisation import subspace
    P = subspace(lm, rank=64, basis="pca")  # (d, r) float32 on lm.device, orthonormal columns
    coeffs = x0 @ P                         # (K, r): what AdamW trains, from a (K, d) start
    vectors = coeffs @ P.T                  # (K, d): what the model sees and what is saved

Bases (docs/method.md section 8.5):
- ``pca``: the top r principal directions of the model's input embedding matrix (centred),
  from the eigendecomposition of its d x d covariance, so a 128k x d matrix is never factorised.
- ``random``: a Gaussian d x r matrix orthonormalised by QR, from a fixed seed, so every text
  of a model shares one subspace (a warm start from vectors made in it loses nothing).

A basis is computed once per (model, basis, rank) and cached on the model object.
"""

from __future__ import annotations

import torch

PARAMETRISATIONS = ("full", "low_rank")
BASES = ("pca", "random")
RANDOM_SEED = 0  # the random basis: one subspace per (d, rank), the same for every text
_ROWS = 8192  # embedding rows per chunk of the covariance (bounds the float32 copy of E)


def subspace(lm, rank: int, basis: str) -> torch.Tensor:
    """(d, rank) float32 on lm.device with orthonormal columns; ValueError unless 1 <= rank <= d."""
    weight = lm.embeddings.weight
    d = weight.shape[1]
    if not 1 <= rank <= d:
        raise ValueError(
            f"optim.rank must be between 1 and d = {d} (the input-embedding width of {lm.spec.name}), got {rank}"
        )
    if basis not in BASES:
        raise ValueError(f"optim.basis {basis!r} is not one of {', '.join(BASES)}")
    cache = getattr(lm.model, "_memcap_subspaces", None)
    if cache is None:
        cache = lm.model._memcap_subspaces = {}
    if (basis, rank) not in cache:
        cache[(basis, rank)] = pca_basis(weight.detach(), rank) if basis == "pca" else random_basis(d, rank)
    return cache[(basis, rank)].to(lm.device)


def pca_basis(weight: torch.Tensor, rank: int) -> torch.Tensor:
    """The top `rank` principal directions of the rows of `weight` (V, d) as a (d, rank) CPU
    tensor: the eigenvectors of the centred d x d covariance with the largest eigenvalues,
    largest first, each signed so that its largest-magnitude entry is positive (reproducible).
    The covariance is summed over chunks of rows, so no float32 copy of a large E is made."""
    V = weight.shape[0]
    mean = torch.zeros(weight.shape[1], dtype=torch.float64, device=weight.device)
    for start in range(0, V, _ROWS):
        mean += weight[start : start + _ROWS].double().sum(dim=0)
    mean = (mean / V).float()
    cov = torch.zeros(weight.shape[1], weight.shape[1], dtype=torch.float64, device=weight.device)
    for start in range(0, V, _ROWS):
        x = weight[start : start + _ROWS].float() - mean
        cov += (x.T @ x).double()
    _, vectors = torch.linalg.eigh(cov.cpu() / V)  # eigenvalues ascending
    return _signed(vectors[:, -rank:].flip(1)).float()


def random_basis(d: int, rank: int, seed: int = RANDOM_SEED) -> torch.Tensor:
    """A (d, rank) float32 matrix with orthonormal columns: QR of a seeded Gaussian, on the CPU."""
    gaussian = torch.randn(d, rank, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    return (q * torch.sign(torch.diagonal(r))).float()  # R's diagonal positive: QR made unique


def _signed(vectors: torch.Tensor) -> torch.Tensor:
    """Columns flipped so that each one's largest-magnitude entry is positive."""
    rows = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[rows, torch.arange(vectors.shape[1])])
    return vectors * torch.where(signs == 0, 1.0, signs).to(vectors.dtype)
