"""Training: the loop and what it runs.

  loop         train_one_epoch (forward, loss, backward, step) and fit (set-up, then an epoch at a time)
  epoch        a finished epoch: what fit hands to its on_epoch, what a checkpoint records, resuming
  ema          an exponential moving average of a model's weights
  distributed  torchrun: each process's share of the data, numbers pooled over processes
  batchnorm    which batches BatchNorm can train on, checked before training
"""
from .epoch import Epoch
from .loop import LossNotFinite, fit, lr_factor, train_one_epoch

__all__ = ["fit", "train_one_epoch", "lr_factor", "Epoch", "LossNotFinite"]
