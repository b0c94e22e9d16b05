"""Training one trial under the paper protocol (DESIGN §4): the value types (settings), one
trial's run (run), the pack scheduler (schedule) and the fused kernels' glue (packed)."""

from .schedule import train, train_pack
from .settings import (
    Divergence,
    Hyperparameters,
    TrainResult,
    TrainSettings,
    TrialJob,
    effective_learning_rate,
)

__all__ = ["Divergence", "Hyperparameters", "TrainResult", "TrainSettings",
           "TrialJob",
           "effective_learning_rate", "train", "train_pack"]
