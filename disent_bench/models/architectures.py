"""The reference convolutional encoder and decoder for 64x64 images, shared by every built-in model.

Architecture (disentanglement_lib's ``conv_encoder`` / ``deconv_decoder``, as in Higgins et al. 2017):

* encoder: conv 32 k4 s2, conv 32 k4 s2, conv 64 k2 s2, conv 64 k2 s2 (ReLU, TensorFlow "same"
  padding: 1 pixel each side for k4 s2 on even sizes, none for k2 s2), flatten (1024),
  dense 256 ReLU, then linear heads for the mean and the log-variance;
* decoder: dense 256 ReLU, dense 1024 ReLU, reshape to 64x4x4, transposed convs 64, 32, 32
  (k4 s2, padding 1, ReLU) and a last transposed conv to C channels (k4 s2) giving logits.

The reference flattens and reshapes in TensorFlow's HWC order; PyTorch's NCHW gives CHW order. The
two differ only by a fixed permutation of the 1024 inputs (outputs) of a dense layer, a free
relabelling of its weights, so the function class and the training dynamics are the same.

Weights are initialised as the reference (TensorFlow/Keras defaults): Glorot-uniform kernels
(``torch.nn.init.xavier_uniform_``) and zero biases. For a transposed conv PyTorch swaps what it
calls fan-in and fan-out, which Glorot's ``fan_in + fan_out`` does not see.
"""

from __future__ import annotations

import torch
from torch import nn

from disent_bench.errors import UserError
from disent_bench.models.base import BaseModel

__all__ = ["IMAGE_SIZE", "ConvEncoder", "ConvDecoder", "ConvModel"]

IMAGE_SIZE = 64


class ConvEncoder(nn.Module):
    """64x64xC images -> a 256-unit hidden layer -> ``heads`` linear heads of ``latent_dim`` each."""

    def __init__(self, in_channels: int, latent_dim: int, heads: int = 2) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 4, stride=2, padding=1), nn.ReLU(),  # 64 -> 32
            nn.Conv2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),           # 32 -> 16
            nn.Conv2d(32, 64, 2, stride=2), nn.ReLU(),                      # 16 -> 8
            nn.Conv2d(64, 64, 2, stride=2), nn.ReLU(),                      # 8 -> 4
            nn.Flatten(),                                                   # 64*4*4 = 1024 (CHW order)
            nn.Linear(1024, 256), nn.ReLU(),
        )
        self.mean = nn.Linear(256, latent_dim)
        self.logvar = nn.Linear(256, latent_dim) if heads == 2 else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden = self.features(x)
        return self.mean(hidden), (self.logvar(hidden) if self.logvar is not None else None)


class ConvDecoder(nn.Module):
    """Codes -> Bernoulli logits of 64x64xC images."""

    def __init__(self, out_channels: int, latent_dim: int) -> None:
        super().__init__()
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, 256), nn.ReLU(),
            nn.Linear(256, 1024), nn.ReLU(),
            nn.Unflatten(1, (64, 4, 4)),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # 4 -> 8
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 8 -> 16
            nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1), nn.ReLU(),  # 16 -> 32
            nn.ConvTranspose2d(32, out_channels, 4, stride=2, padding=1),   # 32 -> 64, logits
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.dense(z))


class ConvModel(BaseModel):
    """Shared by the reference models: the conv encoder/decoder, Glorot init and the 64x64 input check."""

    _heads = 2

    def __init__(self, *, in_channels: int, latent_dim: int = 10, **params) -> None:
        super().__init__(in_channels=in_channels, latent_dim=latent_dim, **params)
        if in_channels not in (1, 3):
            raise UserError(f"model {self.hparams['name']!r}: in_channels must be 1 (grey) or 3 (RGB), "
                            f"got {in_channels}")
        self.encoder = ConvEncoder(in_channels, latent_dim, heads=self._heads)
        self.decoder = ConvDecoder(in_channels, latent_dim)
        self.init_weights()

    def init_weights(self) -> None:
        """Glorot-uniform kernels and zero biases, as TensorFlow's defaults in the reference."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def check_image_shape(self, image_shape: tuple[int, ...]) -> None:
        super().check_image_shape(image_shape)
        if tuple(image_shape[:2]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise UserError(f"model {self.hparams['name']!r} takes {IMAGE_SIZE}x{IMAGE_SIZE} images, "
                            f"got {image_shape[0]}x{image_shape[1]}")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)
