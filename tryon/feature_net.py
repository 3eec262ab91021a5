"""The domain feature network: a small multi-head CNN classifier over the dataset's own labels.

Its features are the feature space of the offline metrics (`tryon metrics`, training/metrics.py) and
its heads recover labels (conditional accuracy; garment transfer's category / colour estimate). It is
trained by `tryon feature-net` (training/feature_net.py); the class lives here so that the service
can load a shipped one (`tryon/assets/fashion_features`, `face_features`) without importing
`training`. `load_feature_net` registers the class with the checkpoint allow-list.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from tryon.checkpoint import load_checkpoint, register_network_class
from tryon.errors import CheckpointError, InputError
from tryon.labels import LabelSchema
from tryon.nn.misc import assert_shape

NETWORK_NAME = "feature_net"       # Name of the network inside its checkpoint folder.


@dataclasses.dataclass(frozen=True)
class LabelHead:
    """One classifier head: a label column of the schema the network was trained on."""

    name: str                       # Column name, e.g. "gender" or "Smiling".
    values: tuple[str, ...]         # Column values in one-hot order; one value = a binary attribute.
    offset: int                     # Index of the column's first entry in the label vector.

    @property
    def binary(self) -> bool:
        """A single-value column: the entry is 1 when the attribute is present (sigmoid head)."""
        return len(self.values) == 1

    @property
    def num_logits(self) -> int:
        return 1 if self.binary else len(self.values)

    @property
    def num_classes(self) -> int:
        """Classes a prediction can take: 2 (absent, present) for a binary head, else len(values)."""
        return 2 if self.binary else len(self.values)

    def class_name(self, k: int) -> str:
        if self.binary:
            return ("not ", "")[k] + self.values[0]
        return self.values[k]


def heads_from_schema(label_schema: Mapping[str, Any]) -> tuple[LabelHead, ...]:
    schema = LabelSchema.from_json(label_schema)
    if not schema.columns:
        raise InputError("the label schema has no columns: a feature net needs labels to learn from")
    return tuple(LabelHead(name=c.name, values=c.values, offset=c.offset) for c in schema.columns)


def uint8_to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, C, H, W] in [0, 255] -> float32 in [-1, 1] (the generator's range)."""
    return images.to(torch.float32) / 127.5 - 1



class _ConvBNReLU(torch.nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__(
            torch.nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            torch.nn.BatchNorm2d(out_channels),
            torch.nn.ReLU(inplace=True),
        )


class FeatureNet(torch.nn.Module):
    """Small CNN classifier with one head per label column, and features for the metrics.

    forward(img) -> (features [N, num_features], logits [N, sum of head sizes]); `img` is float in
    [-1, 1], [N, img_channels, H, W] (a grayscale [N, 1, H, W] is repeated to RGB), any H and W.

    The features are the embedding the heads read plus the mean activation of every stage, each
    block scaled (`feature_scale`, set by `calibrate`) to unit total variance on real images. The
    embedding alone only knows the labels: it puts images unlike any it trained on (noise, blur, an
    untrained generator's textures) near the middle of the real distribution, where precision counts
    them as realistic; the stage statistics keep them apart.
    """

    feature_scale: torch.Tensor

    def __init__(
        self,
        label_schema: Mapping[str, Any],            # Columns to classify (LabelSchema JSON); one head per column.
        resolution: int = 64,                       # Inputs are resized to resolution x resolution first.
        img_channels: int = 3,                      # Channels of the images (1 = grayscale, 3 = RGB).
        channels: Sequence[int] = (32, 64, 128, 192),  # Stem width, then one stride-2 stage per entry.
        stem_stride: int = 2,                       # Stride of the stem conv (2 halves the cost of all layers).
        feature_dim: int = 128,                     # Size of the embedding the heads read.
        dropout: float = 0.2,                       # Dropout between the embedding and the heads (training).
        holdout_fraction: float = 0.1,              # Share of the training data held out (never trained on).
        holdout_seed: int = 0,                      # Seed of that split (see `split_indices`).
    ) -> None:
        super().__init__()
        if resolution < 8 or img_channels not in (1, 3) or len(channels) < 2 or feature_dim < 1:
            raise ValueError(
                f"bad FeatureNet shape: resolution={resolution}, img_channels={img_channels}, "
                f"channels={list(channels)}, feature_dim={feature_dim}"
            )
        self.heads = heads_from_schema(label_schema)
        self.label_schema = LabelSchema.from_json(label_schema).to_json()
        self.resolution = resolution
        self.img_channels = img_channels
        self.feature_dim = feature_dim
        self.holdout_fraction = holdout_fraction
        self.holdout_seed = holdout_seed
        self.init_kwargs: dict[str, Any] = {
            "label_schema": self.label_schema,
            "resolution": resolution,
            "img_channels": img_channels,
            "channels": list(channels),
            "stem_stride": stem_stride,
            "feature_dim": feature_dim,
            "dropout": dropout,
            "holdout_fraction": holdout_fraction,
            "holdout_seed": holdout_seed,
        }
        layers: list[torch.nn.Module] = [_ConvBNReLU(img_channels, channels[0], stride=stem_stride)]
        for cin, cout in itertools.pairwise(channels):
            layers += [_ConvBNReLU(cin, cout, stride=2), _ConvBNReLU(cout, cout, stride=1)]
        self.trunk = torch.nn.Sequential(*layers)
        self.stage_ends = [2 * i for i in range(1, len(channels))]  # Trunk indices where a stage ends.
        self.embed = torch.nn.Linear(channels[-1], feature_dim)
        self.dropout = torch.nn.Dropout(dropout)
        self.classifier = torch.nn.Linear(feature_dim, sum(h.num_logits for h in self.heads))
        self.num_features = feature_dim + sum(channels[1:])
        self.register_buffer("feature_scale", torch.ones([len(channels)]))  # Embedding, then each stage.

    def prepare(self, img: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> [N, img_channels, resolution, resolution]."""
        assert_shape(img, [None, None, None, None])
        if img.shape[1] == 1 and self.img_channels == 3:
            img = img.repeat(1, 3, 1, 1)
        assert_shape(img, [None, self.img_channels, None, None])
        img = img.to(torch.float32)
        if tuple(img.shape[2:]) != (self.resolution, self.resolution):
            img = F.interpolate(
                img, size=(self.resolution, self.resolution), mode="bilinear", antialias=True, align_corners=False
            )
        return img

    def _blocks(self, img: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Unscaled feature blocks [embedding [N, feature_dim], stage means [N, C_i]...] and logits."""
        x = self.prepare(img)
        pooled = []
        for i, layer in enumerate(self.trunk):
            x = layer(x)
            if i in self.stage_ends:
                pooled.append(x.mean(dim=(2, 3)))
        embedding = F.relu(self.embed(pooled[-1]))
        logits = self.classifier(self.dropout(embedding))
        return [embedding, *pooled], logits

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        blocks, logits = self._blocks(img)
        features = torch.cat([b * s for b, s in zip(blocks, self.feature_scale.unbind(), strict=True)], dim=1)
        assert_shape(features, [img.shape[0], self.num_features])
        return features, logits

    def features(self, img: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> features [N, num_features] (the metrics' feature space)."""
        return self(img)[0]

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor, batch_size: int = 256) -> None:
        """Set `feature_scale` so that each feature block has unit total variance on `images` (uint8
        [N, C, H, W] real images, N >= 2), so that no block outweighs the others in FD / KID / PR."""
        was_training = self.training
        self.eval()
        device = self.feature_scale.device
        parts = [self._blocks(uint8_to_float(images[s : s + batch_size].to(device)))[0]
                 for s in range(0, len(images), batch_size)]
        self.train(was_training)
        for k, block in enumerate(zip(*parts, strict=True)):
            total_var = float(torch.cat(block).to(torch.float64).var(dim=0).sum())
            self.feature_scale[k] = 1 / math.sqrt(total_var) if total_var > 0 else 1.0

    def split_logits(self, logits: torch.Tensor) -> list[torch.Tensor]:
        """[N, sum of head sizes] -> one [N, head.num_logits] tensor per head."""
        return list(logits.split([h.num_logits for h in self.heads], dim=1))

    def classes_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """[N, sum of head sizes] -> predicted class per head, int64 [N, num_heads]."""
        preds = [
            (part[:, 0] > 0).to(torch.int64) if head.binary else part.argmax(dim=1)
            for head, part in zip(self.heads, self.split_logits(logits), strict=True)
        ]
        return torch.stack(preds, dim=1)

    def predict(self, img: torch.Tensor) -> torch.Tensor:
        """float [N, C, H, W] in [-1, 1] -> predicted class per head, int64 [N, num_heads]."""
        return self.classes_from_logits(self(img)[1])

    def extra_repr(self) -> str:
        return (
            f"resolution={self.resolution}, img_channels={self.img_channels}, feature_dim={self.feature_dim}, "
            f"num_features={self.num_features}, "
            f"heads=[{', '.join(f'{h.name}:{h.num_classes}' for h in self.heads)}]"
        )



def register_feature_net() -> None:
    """Allow checkpoints to hold a FeatureNet (checkpoints rebuild networks from an allow-list;
    tryon.checkpoint cannot import this module, so it adds itself when used). Idempotent."""
    register_network_class(FeatureNet)


def load_feature_net(directory: str | os.PathLike[str], device: str | torch.device = "cpu") -> FeatureNet:
    """Load a feature net saved by `save_feature_net` (strict, eval mode, no grad)."""
    register_feature_net()
    ckpt = load_checkpoint(directory, names=(NETWORK_NAME,), device=device)
    net = ckpt.networks[NETWORK_NAME]
    if not isinstance(net, FeatureNet):
        raise CheckpointError(f"{directory} holds a {type(net).__name__} named {NETWORK_NAME!r}, not a FeatureNet")
    return net

