"""Closed forms of the UAI 2019 paper (section 4), as plain functions of the truth and the point.

They are what the theory checks hold the engine to, and what the Figure 2 report compares EM's
observed factors with; they use no engine and no data.
"""

from __future__ import annotations

import numpy as np


def bmm_lambda(true_mu: np.ndarray, xbar: np.ndarray, mu1: np.ndarray) -> np.ndarray:
    """Eq. 4.13: lambda_i = 2 mu*_i b_i / S_i, 2 mu* = mu*_1 - mu*_2, b = mu_1 - xbar, S_i = xbar_i (1 - xbar_i)."""
    return (true_mu[0] - true_mu[1]) * (mu1 - xbar) / (xbar * (1 - xbar))


def bmm_z1_products(true_pi: np.ndarray, true_mu: np.ndarray, xbar: np.ndarray, mu1: np.ndarray) -> float:
    """Eq. 4.11: Z_1 = sum_k pi*_k prod_i (mu*_ki mu_1i / xbar_i + (1 - mu*_ki)(1 - mu_1i) / (1 - xbar_i))."""
    terms = true_mu * mu1 / xbar + (1 - true_mu) * (1 - mu1) / (1 - xbar)  # [2, D]
    return float(true_pi @ np.prod(terms, axis=1))


def bmm_z1_lambda(true_pi: np.ndarray, lam: np.ndarray) -> float:
    """Eq. 4.12: Z_1 = pi*_1 prod_i (1 + pi*_2 lambda_i) + pi*_2 prod_i (1 - pi*_1 lambda_i)."""
    return float(true_pi[0] * np.prod(1 + true_pi[1] * lam) + true_pi[1] * np.prod(1 - true_pi[0] * lam))


def bmm_lambda_update(true_pi, true_mu, xbar, mu1) -> np.ndarray:
    """Eq. 4.14: M(lambda)_i = lambda_i + (2 mu*_i / S_i)^2 pi*_1 pi*_2 (Lambda_i / Z_1)(B_1i - B_2i),
    Lambda_i = mu_1i (1 - mu_1i), B_1i = prod_{j != i} (1 + pi*_2 lambda_j), B_2i = prod_{j != i} (1 - pi*_1 lambda_j)."""
    lam = bmm_lambda(true_mu, xbar, mu1)
    z1 = bmm_z1_lambda(true_pi, lam)
    first, second = 1 + true_pi[1] * lam, 1 - true_pi[0] * lam
    b1 = np.array([np.prod(np.delete(first, i)) for i in range(len(lam))])
    b2 = np.array([np.prod(np.delete(second, i)) for i in range(len(lam))])
    scale = ((true_mu[0] - true_mu[1]) / (xbar * (1 - xbar))) ** 2
    return lam + scale * true_pi[0] * true_pi[1] * mu1 * (1 - mu1) / z1 * (b1 - b2)


def escape_factor(b: np.ndarray, true_pi: np.ndarray, true_mu: np.ndarray) -> np.ndarray:
    """Eq. 4.4: Z_1 = pi*_1 exp(2 pi*_2 b.mu*) + pi*_2 exp(-2 pi*_1 b.mu*) for b [..., D], with the
    truth centred (mu*_1 = mu* = -mu*_2), mu_2 at the data mean and pi_1 -> 0 (population)."""
    s = b @ (0.5 * (true_mu[0] - true_mu[1]))  # b.mu* does not depend on where the midpoint is
    return true_pi[0] * np.exp(2 * true_pi[1] * s) + true_pi[1] * np.exp(-2 * true_pi[0] * s)
