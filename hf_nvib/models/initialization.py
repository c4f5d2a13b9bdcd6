"""Weight initialisation that survives ``from_pretrained``.

``from_pretrained`` builds the model on the meta device and fills every tensor missing from the
checkpoint (all NVIB tensors when converting a plain checkpoint) with ``empty_like`` garbage;
only ``_init_weights`` runs afterwards. The guarded ``transformers.initialization`` functions
skip tensors that were loaded, so a trained NVIB checkpoint keeps its weights.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import initialization as init

# Non-persistent float buffers (never in a checkpoint) -> value they must hold after loading.
KL_WEIGHT_BUFFERS = {"kl_gaussian_weight": 1.0, "kl_dirichlet_weight": 1.0}


class NvibInitMixin:
    """Mix into every NVIB ``PreTrainedModel`` class (encoder and decoder stacks included).

    Composite models dispatch each sub-model's modules to *that* sub-model's ``_init_weights``,
    so the NVIB layer inside the encoder is initialised by the encoder's method.
    """

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # type: ignore[misc]
        identity_values = getattr(module, "identity_values", None)
        if callable(identity_values):
            # Leaf modules of the NVIB layer: copy the identity init over the generic one.
            for name, value in identity_values().items():
                tensor = getattr(module, name)
                init.copy_(tensor, value.to(device=tensor.device, dtype=tensor.dtype))
        for name, value in KL_WEIGHT_BUFFERS.items():
            buffer = getattr(module, name, None)
            if isinstance(buffer, torch.Tensor):
                init.constant_(buffer, value)
