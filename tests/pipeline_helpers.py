"""Tiny seeded fashion models for the pipeline and API tests: a 16 px conditional G with its D, and a
domain classifier on the same labels, saved like tryon/assets (fashion/ + fashion_features/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service_helpers import FASHION_SCHEMA, TINY_G_KWARGS

G_KWARGS = TINY_G_KWARGS
D_KWARGS: dict[str, Any] = {
    "c_dim": 10,
    "img_resolution": 16,
    "img_channels": 3,
    "channel_base": 128,
    "channel_max": 8,
}


def save_tiny_fashion_models(root: Path, *, seed: int = 0) -> Path:
    """root/fashion (G_ema + D, FASHION_SCHEMA) and root/fashion_features (a random FeatureNet).
    Returns root/fashion."""
    import torch

    from tryon.checkpoint import save_checkpoint
    from tryon.feature_net import NETWORK_NAME, FeatureNet, register_feature_net
    from tryon.nn import Discriminator, Generator

    torch.manual_seed(seed)
    G = Generator(**G_KWARGS).eval()
    D = Discriminator(**D_KWARGS).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    fashion = save_checkpoint(
        root / "fashion",
        {"G_ema": G, "D": D},
        {"networks": {"G_ema": {"kwargs": G_KWARGS}, "D": {"kwargs": D_KWARGS}}, "label_schema": FASHION_SCHEMA},
    )
    register_feature_net()
    net = FeatureNet(FASHION_SCHEMA, resolution=16, channels=(4, 8), feature_dim=8).eval()
    save_checkpoint(root / "fashion_features", {NETWORK_NAME: net}, {"label_schema": FASHION_SCHEMA})
    return fashion
