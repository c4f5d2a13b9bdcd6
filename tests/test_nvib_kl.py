"""KL terms against independent references (torch.distributions, mpmath, Monte Carlo)."""

from __future__ import annotations

import math

import mpmath
import pytest
import torch
from torch.distributions import Dirichlet, Normal, kl_divergence

from hf_nvib.nvib import kl_dirichlet, kl_gaussian


def _random_log_alpha(batch: int, slots: int, kappa: int, seed: int) -> tuple:
    """Per-copy log α spanning α ∈ [1e-3, 1e6] and a ragged mask (prior slots always valid)."""
    gen = torch.Generator().manual_seed(seed)
    comps = slots // kappa
    log_alpha = torch.empty(batch, comps, dtype=torch.float64).uniform_(
        math.log(1e-3), math.log(1e6), generator=gen
    )
    lengths = torch.randint(1, comps + 1, (batch,), generator=gen)
    lengths[0] = comps
    comp_mask = torch.arange(comps)[None, :] < lengths[:, None]
    log_alpha = log_alpha.repeat_interleave(kappa, 1) - math.log(kappa)
    return log_alpha, comp_mask.repeat_interleave(kappa, 1)


@pytest.mark.parametrize("kappa", [1, 3])
@pytest.mark.parametrize("delta", [1.0, 0.25])
def test_kl_dirichlet_matches_torch_distributions(kappa: int, delta: float) -> None:
    log_alpha, mask = _random_log_alpha(6, 8 * kappa, kappa, seed=kappa)
    prior_log_alpha = 0.7
    got = kl_dirichlet(log_alpha, mask, prior_log_alpha, delta=delta, kappa=kappa)
    assert got.dtype == torch.float64
    for b in range(log_alpha.shape[0]):
        k = int(mask[b].sum())
        n = k / kappa
        a_q = log_alpha[b][mask[b]].exp().sum()
        a_p = math.exp(prior_log_alpha) + delta * (n - 1)
        q = Dirichlet(torch.full((k,), float(a_q) / k, dtype=torch.float64))
        p = Dirichlet(torch.full((k,), a_p / k, dtype=torch.float64))
        want = kl_divergence(q, p) / n
        torch.testing.assert_close(got[b], want, rtol=1e-9, atol=1e-9)


def _mpmath_kl_dirichlet(log_alphas: list[float], prior_log_alpha: float, kappa: int) -> float:
    mpmath.mp.dps = 520  # e^1000 needs ~435 digits before the terms cancel
    k = len(log_alphas)
    n = mpmath.mpf(k) / kappa
    a_q = sum(mpmath.exp(mpmath.mpf(v)) for v in log_alphas)
    a_p = mpmath.exp(prior_log_alpha) + (n - 1)
    value = (
        mpmath.loggamma(a_q)
        - mpmath.loggamma(a_p)
        + (a_q - a_p) * (mpmath.digamma(a_q / k) - mpmath.digamma(a_q))
        + k * (mpmath.loggamma(a_p / k) - mpmath.loggamma(a_q / k))
    )
    return float(value / n)


@pytest.mark.parametrize("kappa", [1, 3])
def test_kl_dirichlet_huge_alpha_matches_high_precision(kappa: int) -> None:
    """Around the switch to the asymptotic form (A_q/K = 10) and up to log α = 1e3."""
    k = 4 * kappa
    token_log_alphas = [1.0, 2.0, 2.5, 3.0, 3.5, 4.0, 8.0, 30.0, 200.0, 1000.0]
    rows = torch.tensor(
        [[0.0] * kappa + [v] * (k - kappa) for v in token_log_alphas], dtype=torch.float64
    ) - math.log(kappa)
    rows.requires_grad_(True)
    mask = torch.ones_like(rows, dtype=torch.bool)
    got = kl_dirichlet(rows, mask, 0.0, kappa=kappa)
    want = torch.tensor(
        [_mpmath_kl_dirichlet(r.tolist(), 0.0, kappa) for r in rows.detach()],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    got.sum().backward()
    assert torch.isfinite(rows.grad).all()


def test_kl_dirichlet_is_zero_at_the_prior_and_float32_is_finite() -> None:
    # Posterior total equal to the prior total (α₀ = 1, every token α = δ) gives KL_D = 0.
    log_alpha = torch.tensor([[0.0, math.log(0.25), math.log(0.25), math.log(0.25)]])
    mask = torch.ones_like(log_alpha, dtype=torch.bool)
    assert abs(float(kl_dirichlet(log_alpha, mask, 0.0, delta=0.25))) < 1e-6
    huge = torch.full((2, 5), 1000.0, requires_grad=True)
    out = kl_dirichlet(huge, torch.ones(2, 5, dtype=torch.bool), 0.0)
    out.sum().backward()
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all() and torch.isfinite(huge.grad).all()


def test_kl_dirichlet_gradcheck_both_branches() -> None:
    log_alpha = torch.tensor(
        [[0.0, -2.0, 1.0, 0.5], [0.0, 6.0, 7.0, 8.0], [0.0, 40.0, 41.0, -1.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]], dtype=torch.bool)
    assert torch.autograd.gradcheck(lambda la: kl_dirichlet(la, mask, 0.3, 0.5), (log_alpha,))


def _gaussian_inputs(seed: int, kappa: int = 1) -> tuple:
    gen = torch.Generator().manual_seed(seed)
    b, comps, p = 3, 5, 6
    mu = torch.randn(b, comps, p, generator=gen, dtype=torch.float64)
    logvar = torch.randn(b, comps, p, generator=gen, dtype=torch.float64)
    log_alpha = torch.randn(b, comps, generator=gen, dtype=torch.float64) * 2
    mask = torch.ones(b, comps, dtype=torch.bool)
    mask[1, 3:] = False
    prior_mu = torch.randn(p, generator=gen, dtype=torch.float64)
    prior_var = torch.rand(p, generator=gen, dtype=torch.float64) + 0.5
    rep = lambda t: t.repeat_interleave(kappa, 1)  # noqa: E731
    return rep(mu), rep(logvar), rep(log_alpha) - math.log(kappa), rep(mask), prior_mu, prior_var


@pytest.mark.parametrize("kappa", [1, 3])
def test_kl_gaussian_matches_normal_kl(kappa: int) -> None:
    mu, logvar, log_alpha, mask, prior_mu, prior_var = _gaussian_inputs(0, kappa)
    got = kl_gaussian(mu, logvar, log_alpha, mask, prior_mu, prior_var, kappa=kappa)
    q = Normal(mu, (0.5 * logvar).exp())
    p = Normal(prior_mu, prior_var.sqrt())
    per_slot = kl_divergence(q, p).mean(-1)  # (B, L): mean over features
    weights = torch.where(mask, log_alpha.exp(), torch.zeros_like(log_alpha))
    weights = weights / weights.sum(-1, keepdim=True)
    # (κ/2)·Σ E[π]·mean_p[…] == κ·Σ E[π]·mean_p KL(N‖N₀), the ½ living inside the Normal KL.
    want = kappa * (weights * per_slot).sum(-1)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_kl_gaussian_agrees_with_monte_carlo() -> None:
    mu, logvar, log_alpha, mask, prior_mu, prior_var = _gaussian_inputs(1)
    got = kl_gaussian(mu, logvar, log_alpha, mask, prior_mu, prior_var)
    gen = torch.Generator().manual_seed(2)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn((40000, *mu.shape), generator=gen, dtype=torch.float64)
    log_ratio = Normal(mu, std).log_prob(z) - Normal(prior_mu, prior_var.sqrt()).log_prob(z)
    per_slot = log_ratio.mean(0).mean(-1)
    weights = torch.where(mask, log_alpha.exp(), torch.zeros_like(log_alpha))
    want = (weights / weights.sum(-1, keepdim=True) * per_slot).sum(-1)
    # MC standard error here is ~5e-3 per sequence; 0.03 is > 5 sigma.
    torch.testing.assert_close(got, want, rtol=0.0, atol=0.03)


def test_kl_gaussian_ignores_garbage_at_masked_slots_and_gradchecks() -> None:
    mu, logvar, log_alpha, mask, prior_mu, prior_var = _gaussian_inputs(3)
    clean = kl_gaussian(mu, logvar, log_alpha, mask, prior_mu, prior_var)
    mu2, logvar2, log_alpha2 = mu.clone(), logvar.clone(), log_alpha.clone()
    mu2[~mask], logvar2[~mask], log_alpha2[~mask] = 1e30, 500.0, 1e3
    torch.testing.assert_close(
        kl_gaussian(mu2, logvar2, log_alpha2, mask, prior_mu, prior_var), clean
    )
    inputs = tuple(t.clone().requires_grad_(True) for t in (mu, logvar, log_alpha))
    assert torch.autograd.gradcheck(
        lambda m, lv, la: kl_gaussian(m, lv, la, mask, prior_mu, prior_var, kappa=2), inputs
    )
