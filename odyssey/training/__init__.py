"""Training one trial under the paper protocol (DESIGN §4)."""

from .trainer import (
                      Divergence,
                      Hyperparameters,
                      TrainResult,
                      TrainSettings,
                      effective_learning_rate,
                      train,
)

__all__ = ["Divergence", "Hyperparameters", "TrainResult", "TrainSettings",
           "effective_learning_rate", "train"]
