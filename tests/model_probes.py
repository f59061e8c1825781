"""Wrappers that watch a real torch model at work (tests and benchmarks)."""

from __future__ import annotations

from typing import Any

import torch


class CountingModel(torch.nn.Module):
    """The real module, recording each forward pass's leading input shape (batch, frames)."""

    def __init__(self, real: torch.nn.Module) -> None:
        super().__init__()
        self.real = real
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, features: torch.Tensor) -> Any:
        self.shapes.append(tuple(features.shape[:2]))
        return self.real(features)
