"""Accuracy matrix and the standard continual-learning metrics derived from it.

``R[i, j]`` is the test accuracy on task j after training on tasks 0..i (NaN where j has not
been trained yet, i.e. j > i, unless the row was evaluated on every task). With T tasks:

* average accuracy  A = (1/T) Σ_j R[T-1, j]                          (Chaudhry et al. 2018)
* forgetting        F = (1/(T-1)) Σ_{j<T-1} max_{l<T-1} R[l, j] - R[T-1, j]   (Chaudhry et al. 2018)
* backward transfer BWT = (1/(T-1)) Σ_{j<T-1} R[T-1, j] - R[j, j]      (Lopez-Paz & Ranzato 2017)

BWT < 0 is forgetting measured against the accuracy just after learning a task; F measures it
against the best accuracy the task ever had. For T = 1 both are 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _check(R) -> np.ndarray:
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square and non-empty, got shape {R.shape}")
    if np.any(np.isnan(np.tril(R))):
        raise ValueError("accuracy matrix has NaN on or below the diagonal (a seen task was not evaluated)")
    return R


def average_accuracy(R) -> float:
    R = _check(R)
    return float(np.mean(R[-1]))


def forgetting(R) -> float:
    R = _check(R)
    T = R.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([np.max(R[j : T - 1, j]) - R[T - 1, j] for j in range(T - 1)]))


def backward_transfer(R) -> float:
    R = _check(R)
    T = R.shape[0]
    if T == 1:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


@dataclass(frozen=True)
class ContinualMetrics:
    average_accuracy: float
    forgetting: float
    backward_transfer: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def summarize(R) -> ContinualMetrics:
    return ContinualMetrics(average_accuracy(R), forgetting(R), backward_transfer(R))
