"""Observation likelihoods b_j(t) of the LR-HSMM (SEGMENTATION.md §5)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
from scipy.special import expit

from spectnet.segmentation.model import SpringerParams

__all__ = ["observation_density", "emission_probs"]


def observation_density(features: np.ndarray, params: SpringerParams) -> np.ndarray:
    """P(x_t) = N(x_t; obs_mean, obs_cov) for each row of the (T, 4) feature matrix.

    Same value as ``scipy.stats.multivariate_normal.pdf`` (to rounding), via the Cholesky
    factor cached in ``params``.
    """
    dev = features - params.obs_mean
    z = scipy.linalg.solve_triangular(params._obs_chol, dev.T, lower=True)
    maha = np.einsum("ij,ij->j", z, z)
    return np.exp(params._obs_log_norm - 0.5 * maha)


def emission_probs(features: np.ndarray, params: SpringerParams) -> np.ndarray:
    """(T, 4) b_j(t) = P(j | x_t) P(x_t) / pi_j, with P(j | x) = 1 / (1 + exp(eta_j)).

    ``eta_j = b_j0 + sum_k b_jk x_tk`` is the logistic log-odds *against* state j
    (column 2 of MATLAB ``mnrval`` for the 2-class model).
    """
    x = np.asarray(features, dtype=np.float64)
    eta = params.b_matrix[:, 0] + x @ params.b_matrix[:, 1:].T
    p_state = expit(-eta)
    return p_state * observation_density(x, params)[:, None] / params.pi_vector
