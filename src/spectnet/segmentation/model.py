"""Pretrained parameters of the Springer LR-HSMM segmenter.

The numbers ship with the package as ``springer2016.json`` (D. B. Springer, L. Tarassenko,
G. D. Clifford, "Logistic Regression-HSMM-Based Heart Sound Segmentation", IEEE TBME
63(4):822-832, 2016); the file carries its own provenance and citation fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from os import PathLike
from typing import Any, Mapping

import numpy as np

__all__ = ["SpringerParams", "load_params", "default_params"]

PARAMS_RESOURCE = "springer2016.json"


@dataclass(frozen=True)
class SpringerParams:
    """Emission-model parameters (SEGMENTATION.md §5).

    Attributes:
        b_matrix: (4, 5) logistic-regression coefficients, row j = state j+1,
            columns [intercept, homomorphic, Hilbert, PSD, wavelet]; ``eta`` is the
            log-odds *against* the state.
        pi_vector: (4,) state prior (also the initial distribution).
        obs_mean: (4,) mean of the feature Gaussian P(x).
        obs_cov: (4, 4) covariance of the feature Gaussian P(x).
        citation: where the numbers come from.
    """

    b_matrix: np.ndarray
    pi_vector: np.ndarray
    obs_mean: np.ndarray
    obs_cov: np.ndarray
    citation: str = ""
    _obs_chol: np.ndarray = field(init=False, repr=False, compare=False)
    _obs_log_norm: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        b = np.array(self.b_matrix, dtype=np.float64)
        pi = np.array(self.pi_vector, dtype=np.float64).reshape(-1)
        mean = np.array(self.obs_mean, dtype=np.float64).reshape(-1)
        cov = np.array(self.obs_cov, dtype=np.float64)
        if b.shape != (4, 5) or pi.shape != (4,) or mean.shape != (4,) or cov.shape != (4, 4):
            raise ValueError(
                "Springer parameters need b_matrix (4, 5), pi_vector (4,), obs_mean (4,) and "
                f"obs_cov (4, 4); got {b.shape}, {pi.shape}, {mean.shape}, {cov.shape}")
        if not (np.all(np.isfinite(b)) and np.all(pi > 0) and np.all(np.isfinite(mean))):
            raise ValueError("Springer parameters must be finite with a positive pi_vector")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError as exc:
            raise ValueError("obs_cov is not positive definite") from exc
        for name, value in (("b_matrix", b), ("pi_vector", pi), ("obs_mean", mean),
                            ("obs_cov", cov)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_obs_chol", chol)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        object.__setattr__(self, "_obs_log_norm", -0.5 * (4 * np.log(2 * np.pi) + log_det))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> "SpringerParams":
        """Build from a mapping with the JSON file's keys."""
        try:
            return cls(b_matrix=data["b_matrix"], pi_vector=data["pi_vector"],
                       obs_mean=data["total_obs_mean"], obs_cov=data["total_obs_cov"],
                       citation=str(data.get("citation", "")))
        except KeyError as exc:
            raise ValueError(f"Springer parameter file lacks the key {exc.args[0]!r}") from None


def load_params(path: str | PathLike[str] | None = None) -> SpringerParams:
    """Load parameters from a JSON file, or the packaged ``springer2016.json`` if None."""
    if path is None:
        text = resources.files(__package__).joinpath(PARAMS_RESOURCE).read_text()
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    return SpringerParams.from_mapping(json.loads(text))


@lru_cache(maxsize=1)
def default_params() -> SpringerParams:
    """The packaged pretrained parameters (loaded once)."""
    return load_params()
