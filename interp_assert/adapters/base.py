"""The base of model adapters: a module wrapping another whose names it passes through."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class WrappedModel(nn.Module):
    """Passes module, parameter and buffer names straight through to ``self.model`` (no
    ``model.`` prefix), so claims name weights and hook points as in the wrapped model."""

    model: nn.Module

    def get_submodule(self, target: str) -> nn.Module:
        return self.model.get_submodule(target)

    def get_parameter(self, target: str) -> nn.Parameter:
        return self.model.get_parameter(target)

    def get_buffer(self, target: str) -> torch.Tensor:
        return self.model.get_buffer(target)

    def named_modules(self, memo: set[nn.Module] | None = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Module]]:
        return self.model.named_modules(memo, prefix, remove_duplicate)

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]:
        return self.model.named_parameters(prefix, recurse, remove_duplicate)

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, torch.Tensor]]:
        return self.model.named_buffers(prefix, recurse, remove_duplicate)


def require(module: str, adapter: str, install: str) -> Any:
    """Import an optional dependency, or raise an ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"the {adapter} adapter needs '{module}' ({exc}); install it with: "
                          f"{install}") from None
