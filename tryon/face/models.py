"""`FaceModels`: the face generator, its discriminator, the encoder and the attribute classifier,
loaded once; `render_face` turns a `FaceLatent` back into an image.

    models = load_face_models()                 # tryon/assets/face (+ face_encoder, face_features)
    img = render_face(models, latent)           # PIL RGB, res x res

Inference is thread-safe without locks: the networks are in eval mode with requires_grad False and
nothing here writes to them (a latent with pivotal-tuning deltas renders through a private copy of
the synthesis network). `models.cache` is where other parts keep what they load lazily (edit
directions); take `models.lock` around filling it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tryon.checkpoint import load_checkpoint, read_checkpoint_config
from tryon.errors import CheckpointError, InputError
from tryon.face.encoder import NETWORK_NAME as ENCODER_NETWORK
from tryon.face.encoder import FaceEncoder, register_encoder_class
from tryon.face.latent import FaceLatent
from tryon.feature_net import FeatureNet, load_feature_net
from tryon.imaging import to_uint8
from tryon.nn import Discriminator, Generator, SynthesisNetwork

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
FACE_DIR = ASSETS / "face"                          # Shipped face G_ema + D.
ENCODER_DIR = ASSETS / "face_encoder"               # Shipped FaceEncoder, trained for FACE_DIR's G.
FEATURES_DIR = ASSETS / "face_features"             # Shipped attribute classifier (training.feature_net).
W_STATS_SAMPLES = 10_000                            # z samples for w_std (NVlabs projector: 10k).
PTI_LOW_RANK_SUFFIXES = ("@a", "@b")                # pti keys NAME@a [r, fan_in], NAME@b [fan_out, r].


@dataclasses.dataclass
class FaceModels:
    """Everything the face features need, loaded once per process (see `load_face_models`)."""

    G: Generator                                    # Face generator (G_ema), eval, no grad.
    D: Discriminator                                # Its discriminator: multi-scale features for losses.
    encoder: FaceEncoder | None                     # Image -> W+, None when none ships for this G.
    classifier: FeatureNet | None                   # face_features attribute classifier (40 CelebA heads).
    w_avg: torch.Tensor                             # [w_dim] the mapping network's running mean of W.
    w_std: float                                    # RMS distance of W samples from w_avg (NVlabs' w_std).
    resolution: int                                 # Image side, px (64).
    num_ws: int                                     # ws per image (W+ rows).
    directory: Path                                 # The face checkpoint folder.
    device: torch.device
    generator_sha256: str                           # sha256 of G_ema's weights (latents record it).
    encoder_note: str | None = None                 # Why there is no encoder, when there is none.
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)  # Lazily loaded extras (directions...).
    lock: threading.RLock = dataclasses.field(default_factory=threading.RLock)  # Guards `cache`.

    @property
    def w_dim(self) -> int:
        return int(self.G.w_dim)

    @property
    def noise_shapes(self) -> list[tuple[int, int]]:
        return self.G.synthesis.noise_shapes()

    def const_noise(self) -> list[torch.Tensor]:
        """The G's stored per-layer noise ([res, res] each, in noise_shapes order): `noise_mode="const"`."""
        out = []
        for res in self.G.synthesis.block_resolutions:
            block = getattr(self.G.synthesis, f"b{res}")
            for name in ("conv0", "conv1"):
                layer = getattr(block, name, None)
                if layer is not None:
                    out.append(layer.noise_const.detach().clone())
        return out


def load_face_models(
    directory: str | Path | None = None,
    device: str | torch.device = "cpu",
    *,
    encoder: str | Path | bool | None = None,
    classifier: str | Path | bool | None = None,
) -> FaceModels:
    """Load the face generator and what goes with it.

    directory: face checkpoint folder with G_ema and D; None = the shipped tryon/assets/face.
    encoder: FaceEncoder checkpoint folder; None = the shipped tryon/assets/face_encoder when
        `directory` is None (and it exists); True = the shipped one; False = none. An encoder trained
        for another generator (its config records the G's sha256) is not used: the face then starts
        from w_avg.
    classifier: face_features checkpoint folder; None = the shipped one when `directory` is None;
        False = none.
    Raises CheckpointError when a checkpoint is missing or broken.
    """
    shipped = directory is None
    directory = Path(FACE_DIR if directory is None else directory)
    device = torch.device(device)
    config = read_checkpoint_config(directory)
    for name in ("G_ema", "D"):
        if name not in config["networks"]:
            raise CheckpointError(f"{directory} is not a face checkpoint: it has no {name} network")
    ckpt = load_checkpoint(directory, names=("G_ema", "D"), device=device)
    G, D = ckpt.networks["G_ema"], ckpt.networks["D"]
    if not isinstance(G, Generator) or not isinstance(D, Discriminator):
        raise CheckpointError(f"{directory}: G_ema / D are not a Generator / Discriminator")
    if G.c_dim != 0 or D.c_dim != 0:
        raise CheckpointError(f"{directory}: the face generator must be unconditional (c_dim 0), got {G.c_dim}")
    sha = str(config["networks"]["G_ema"]["sha256"])
    w_avg, w_std = _w_stats(G)

    enc, note = None, None
    enc_dir = _optional_folder(encoder, ENCODER_DIR, shipped)
    if enc_dir is not None and (enc_dir / "config.json").is_file():
        enc, note = _load_encoder(enc_dir, sha, device)
    elif encoder not in (None, False):
        raise CheckpointError(f"no face encoder checkpoint in {enc_dir}")
    elif encoder is None:
        note = "no encoder is installed for this face generator"
    if note:  # Not when the caller asked for none (encoder=False: rendering and edits only).
        log.warning("face encoder not used: %s", note)

    net: FeatureNet | None = None
    cls_dir = _optional_folder(classifier, FEATURES_DIR, shipped)
    if cls_dir is not None and (cls_dir / "config.json").is_file():
        net = load_feature_net(cls_dir, device=device)
    elif classifier not in (None, False):
        raise CheckpointError(f"no face_features checkpoint in {cls_dir}")

    return FaceModels(
        G=G,
        D=D,
        encoder=enc,
        classifier=net,
        w_avg=w_avg,
        w_std=w_std,
        resolution=int(G.img_resolution),
        num_ws=int(G.num_ws),
        directory=directory,
        device=device,
        generator_sha256=sha,
        encoder_note=note,
    )


def _optional_folder(arg: str | Path | bool | None, shipped_folder: Path, shipped: bool) -> Path | None:
    """A folder argument of load_face_models: a path, None (= the shipped one beside the shipped G), True
    (= the shipped one) or False (= none)."""
    if arg is False:
        return None
    if arg is None or arg is True:
        return shipped_folder if (shipped or arg is True) else None
    return Path(arg)


def _w_stats(G: Generator) -> tuple[torch.Tensor, float]:
    """(w_avg [w_dim], w_std): the mapping's running mean, and the RMS distance of 10k samples from
    it (seeded, so every process gets the same number)."""
    gen = torch.Generator().manual_seed(123)
    z = torch.randn([W_STATS_SAMPLES, G.z_dim], generator=gen).to(G.mapping.w_avg.device)
    with torch.no_grad():
        w = G.mapping(z, None)[:, 0]
    w_avg = G.mapping.w_avg.detach().clone()
    w_std = float(((w - w_avg).square().sum(dim=1).mean()).sqrt())
    return w_avg, w_std


def _load_encoder(directory: Path, generator_sha: str, device: torch.device) -> tuple[FaceEncoder | None, str | None]:
    register_encoder_class()
    config = read_checkpoint_config(directory)
    trained_for = ((config.get("training") or {}).get("generator") or {}).get("sha256")
    if trained_for != generator_sha:
        return None, (
            f"the encoder in {directory} was trained for another face generator "
            f"(sha256 {str(trained_for)[:12]}…, this one is {generator_sha[:12]}…); retrain it with tryon face-encoder"
        )
    enc = load_checkpoint(directory, names=(ENCODER_NETWORK,), device=device).networks[ENCODER_NETWORK]
    if not isinstance(enc, FaceEncoder):
        raise CheckpointError(f"{directory}: {ENCODER_NETWORK!r} is a {type(enc).__name__}, not a FaceEncoder")
    return enc, None


# ----------------------------------------------------------------------------------------------------
# Images and rendering.


def face_tensor(models: FaceModels, image: Image.Image) -> torch.Tensor:
    """Aligned face (PIL, any size) -> [1, 3, res, res] float32 in [-1, 1] on models.device."""
    if not isinstance(image, Image.Image):
        raise InputError(f"expected a PIL image of an aligned face, got {type(image).__name__}")
    rgb = image.convert("RGB")
    if rgb.size != (models.resolution, models.resolution):
        rgb = rgb.resize((models.resolution, models.resolution), Image.Resampling.LANCZOS)
    a = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1
    return torch.from_numpy(a).unsqueeze(0).to(models.device)


def tensor_to_image(img: torch.Tensor) -> Image.Image:
    """[1, 3, H, W] (or [3, H, W]) in [-1, 1] -> PIL RGB (the project's rounding, tryon.imaging)."""
    a = to_uint8(img if img.ndim == 4 else img.unsqueeze(0))[0]
    return Image.fromarray(a, "RGB")


def check_latent(models: FaceModels, latent: FaceLatent) -> None:
    """InputError when the latent cannot drive this generator (shape); a warning when it was made with
    another generator (it renders, but not the same face)."""
    if (latent.num_ws, latent.w_dim) != (models.num_ws, models.w_dim):
        raise InputError(
            f"the face latent has ws [{latent.num_ws}, {latent.w_dim}]; this face generator needs "
            f"[{models.num_ws}, {models.w_dim}] (was it made with another model?)"
        )
    if latent.noise is not None:
        shapes = [tuple(n.shape) for n in latent.noise]
        if shapes != [tuple(s) for s in models.noise_shapes]:
            raise InputError(f"the face latent's noise shapes {shapes} do not fit this generator")
    made_with = latent.meta.get("generator_sha256")
    if made_with and made_with != models.generator_sha256:
        log.warning("this face latent was made with another face generator (%s…)", str(made_with)[:12])


def pti_synthesis(models: FaceModels, pti: Mapping[str, np.ndarray] | Mapping[str, torch.Tensor]) -> SynthesisNetwork:
    """A private copy of the synthesis network with pivotal-tuning deltas added to its parameters.

    pti: {NAME: full delta} and/or {NAME@a: [r, fan_in], NAME@b: [fan_out, r]} (a low-rank delta
    b @ a, reshaped to the parameter), NAME being a parameter of `G.synthesis`.
    """
    synthesis = copy.deepcopy(models.G.synthesis)
    params = dict(synthesis.named_parameters())
    with torch.no_grad():
        for name, delta in pti_deltas(pti, params).items():
            params[name].add_(delta.to(params[name].dtype))
    return synthesis.eval().requires_grad_(False)


def pti_deltas(
    pti: Mapping[str, np.ndarray] | Mapping[str, torch.Tensor], params: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """{parameter name: dense delta} from stored pti entries (see `pti_synthesis`); differentiable."""
    def tensor(v: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        t = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.asarray(v))
        return t.to(device=like.device, dtype=torch.float32)

    out: dict[str, torch.Tensor] = {}
    for key, value in pti.items():
        base, suffix = (key[:-2], key[-2:]) if key.endswith(PTI_LOW_RANK_SUFFIXES) else (key, "")
        if base not in params:
            raise InputError(f"the face latent's tuning refers to {base!r}, which this generator does not have")
        p = params[base]
        if suffix == "@b":
            continue
        if suffix == "@a":
            b_key = base + "@b"
            if b_key not in pti:
                raise InputError(f"the face latent's tuning has {key!r} without {b_key!r}")
            delta = (tensor(pti[b_key], p) @ tensor(value, p)).reshape(p.shape)
        else:
            delta = tensor(value, p)
        if tuple(delta.shape) != tuple(p.shape):
            raise InputError(f"the face latent's tuning of {base!r} has shape {list(delta.shape)}, not {list(p.shape)}")
        out[base] = out[base] + delta if base in out else delta
    return out


def synthesize(
    models: FaceModels,
    ws: torch.Tensor,
    noise: list[torch.Tensor] | None = None,
    synthesis: SynthesisNetwork | None = None,
) -> torch.Tensor:
    """ws [N, num_ws, w_dim] (+ noise [res, res] per layer, None = the G's const noise) -> images
    [N, 3, res, res] in [-1, 1], differentiable w.r.t. ws and noise. `synthesis`: a tuned copy."""
    net = synthesis if synthesis is not None else models.G.synthesis
    noise_in = None if noise is None else [n.reshape(1, 1, *n.shape[-2:]) for n in noise]
    # Not fused: on CPU at batch 1 the per-sample grouped conv is ~2.5x slower forward+backward.
    fused = models.device.type == "cuda"
    return net(ws, noise=noise_in, noise_mode="const", fused_modconv=fused)


@torch.no_grad()
def render_face(models: FaceModels, latent: FaceLatent) -> Image.Image:
    """The face a latent stands for: PIL RGB, res x res (with its noise and tuning, when it has them)."""
    check_latent(models, latent)
    ws = torch.from_numpy(latent.ws).to(models.device).unsqueeze(0)
    noise = None if latent.noise is None else [torch.from_numpy(n).to(models.device) for n in latent.noise]
    synthesis = pti_synthesis(models, latent.pti) if latent.pti else None
    return tensor_to_image(synthesize(models, ws, noise, synthesis))
