"""Training one trial under the paper protocol (DESIGN §4)."""

from .trainer import (
                      Divergence,
                      Hyperparameters,
                      TrainResult,
                      TrainSettings,
                      TrialJob,
                      effective_learning_rate,
                      train,
                      train_pack,
)

__all__ = ["Divergence", "Hyperparameters", "TrainResult", "TrainSettings",
           "TrialJob",
           "effective_learning_rate", "train", "train_pack"]
