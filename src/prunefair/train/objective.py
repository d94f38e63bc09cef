"""Objectives: what the training loop minimises. Mitigation methods subclass Objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Objective:
    """Hook point for constrained or reweighted fine-tuning.

    ``start`` runs once before training, ``batch_loss`` gives the loss to backpropagate for a batch
    (it may also update dual variables), ``end_epoch`` returns values to log (and may take dual steps).
    """

    def start(self, *, model, data, device) -> None:  # noqa: D401
        return None

    def batch_loss(self, logits: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> dict:
        return {}

    def final_mask_from(self, epochs_done: int) -> None:
        """Told by a pruning schedule that the epochs from index ``epochs_done`` on (counting every ``end_epoch``
        call so far, across rounds) run at the final mask: an objective that selects an epoch must pick one of
        those, or it would report a less sparse model at the cell's rate."""
        return None


class ERM(Objective):
    """Plain empirical risk minimisation: mean cross-entropy (the paper's traditional fine-tuning)."""

    def batch_loss(self, logits, y, g):
        return F.cross_entropy(logits, y)
