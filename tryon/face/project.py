"""`project_face`: an aligned face photo -> a `FaceLatent` whose rendering looks like it.

    res = project_face(models, aligned, steps=50)          # encoder, then 50 optimisation steps
    res.latent, res.image, res.metrics                     # FaceLatent, PIL res x res, psnr/ssim/...

How (NVlabs stylegan2-ada-pytorch projector.py, adapted to work offline and from an encoder):

1. Start: the encoder's W+ (`init="encoder"`), or w_avg (`init="w_avg"`: NVlabs' recipe, one w for
   all layers with a decaying random perturbation, for the 1000-step baseline).
2. Optimise the latent and the per-layer noise with Adam, the learning rate ramped up over the first
   5 % of the steps and down (cosine) over the last 25 %; the noise maps are regularised towards
   white noise (their autocorrelation at every scale, weight 1e5) and renormalised after each step.
   Loss = multi-scale features of the face D (LPIPS-like: channel-normalised, squared differences)
   + pixel MSE + (1 - SSIM), + a VGG16-LPIPS-like term when VGG16 weights are supplied (`vgg`); in W+
   a small penalty on the spread of the ws around their mean keeps the latent near W (where edits
   behave).
3. `pti=True`: pivotal tuning (Roich et al. 2021): the latent is frozen and a private copy of the
   synthesis network is fine-tuned for a few steps around it, with low-rank deltas of every conv
   weight and full deltas of the biases. The deltas (about 0.1 MB in float16) travel inside the
   latent, so `render_face` reproduces the tuned face and edits of it; the shared G is never changed.

There are no pretrained perceptual networks offline (nothing downloads at run time): the D's
features stand in for VGG. `vgg` takes torchvision's VGG16 ImageNet weights from a local file (a state dict saved with
`torch.save`, e.g. `torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict()`), loaded with
`torch.load(weights_only=True)`; its `features.*` entries are used, the rest ignored.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tryon.errors import CheckpointError, InputError
from tryon.face.latent import FaceLatent
from tryon.face.models import (
    FaceModels,
    face_tensor,
    pti_deltas,
    pti_synthesis,
    synthesize,
    tensor_to_image,
)
from tryon.nn import SynthesisLayer, SynthesisNetwork, ToRGBLayer
from tryon.nn.misc import assert_shape

Progress = Callable[[float, str], None]
MAX_STEPS = 10_000

# ----------------------------------------------------------------------------------------------------
# Image similarity: metrics and loss terms.


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images [N, C, H, W] in [-1, 1], measured on 8-bit values (0..255)."""
    qa = ((a.detach() * 127.5 + 128).clamp(0, 255)).floor()
    qb = ((b.detach() * 127.5 + 128).clamp(0, 255)).floor()
    mse = float((qa - qb).square().mean())
    return float("inf") if mse == 0 else 10 * math.log10(255**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004: Gaussian window 11 / 1.5, K1 0.01, K2 0.03) of images [N, C, H, W]
    in [-1, 1], per channel and averaged; differentiable. Returns [N]."""
    assert_shape(b, list(a.shape))
    c = a.shape[1]
    x, y = (a.to(torch.float32) + 1) / 2, (b.to(torch.float32) + 1) / 2
    w = _gaussian_window(window, sigma).to(a.device).expand(c, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=c)  # 'valid': no border effects, as in the reference code.

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def _normalize_channels(f: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """LPIPS' unit-length normalisation of every feature vector (over channels)."""
    return f / (f.square().sum(dim=1, keepdim=True) + eps).sqrt()


def feature_distance(feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor]) -> torch.Tensor:
    """LPIPS-like distance of two lists of feature maps [N, C_i, H_i, W_i] -> [N]: channel-normalised,
    squared differences summed over channels, averaged over positions, averaged over the levels."""
    terms = [
        (_normalize_channels(fa) - _normalize_channels(fb)).square().sum(dim=1).mean(dim=(1, 2))
        for fa, fb in zip(feats_a, feats_b, strict=True)
    ]
    return torch.stack(terms).mean(dim=0)


def noise_regularization(noise: Sequence[torch.Tensor]) -> torch.Tensor:
    """NVlabs' noise regulariser: squared autocorrelation (one px shifts) of every noise map at every
    scale of its pyramid (halved down to 8 x 8). noise: [H, W] maps. Returns a scalar."""
    reg = torch.zeros([], device=noise[0].device)
    for n in noise:
        v = n.reshape(1, 1, *n.shape[-2:])
        while True:
            reg = reg + (v * torch.roll(v, shifts=1, dims=3)).mean() ** 2
            reg = reg + (v * torch.roll(v, shifts=1, dims=2)).mean() ** 2
            if v.shape[2] <= 8:
                break
            v = F.avg_pool2d(v, kernel_size=2)
    return reg


def _renormalize_noise(noise: Sequence[torch.Tensor]) -> None:
    with torch.no_grad():
        for n in noise:
            n -= n.mean()
            n *= n.square().mean().rsqrt()


# ----------------------------------------------------------------------------------------------------
# Optional VGG16 perceptual term (user-supplied weights).

# torchvision's vgg16().features layout: conv widths, "M" = max pool. Index = position in `features`.
_VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M",
)
_VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (LPIPS' layers).


class VGG16Features(torch.nn.Module):
    """VGG16's conv trunk (torchvision's `features` numbering), returning LPIPS' five ReLU taps.

    forward(img [N, 3, H, W] in [-1, 1]) -> list of 5 feature maps. Inputs are resized to `resolution`
    and normalised with ImageNet's mean and std first.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, resolution: int = 128) -> None:
        super().__init__()
        layers: list[torch.nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(torch.nn.MaxPool2d(2, 2))
            else:
                layers += [torch.nn.Conv2d(cin, int(v), 3, padding=1), torch.nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = torch.nn.Sequential(*layers)
        self.resolution = resolution
        imagenet_mean, imagenet_std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        self.register_buffer("mean", torch.tensor(imagenet_mean).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(imagenet_std).reshape(1, 3, 1, 1), persistent=False)

    def forward(self, img: torch.Tensor) -> list[torch.Tensor]:
        assert_shape(img, [None, 3, None, None])
        x = F.interpolate(img, size=(self.resolution, self.resolution), mode="bilinear", align_corners=False)
        x = ((x + 1) / 2 - self.mean) / self.std
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG16_TAPS:
                taps.append(x)
            if i >= _VGG16_TAPS[-1]:
                break
        return taps


def load_vgg16(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", resolution: int = 128
) -> VGG16Features:
    """VGG16 conv trunk from a local torchvision-format state dict (`torch.save(vgg16().state_dict())`),
    read with `torch.load(weights_only=True)` (no code runs). Keys other than `features.*` are ignored;
    the `features.*` keys must match VGG16 exactly."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such VGG16 weights file: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a torch state dict we can read safely ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a state dict (got {type(state).__name__})")
    net = VGG16Features(resolution)
    feats = {k: v for k, v in state.items() if isinstance(k, str) and k.startswith("features.")}
    try:
        net.load_state_dict(feats, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} is not a VGG16 state dict (torchvision layout): {str(exc)[:300]}") from None
    return net.to(device).eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------------
# The loss.


@dataclasses.dataclass(frozen=True)
class ProjectionOptions:
    """Hyper-parameters of `project_face` (defaults: the values used by the shipped benchmarks)."""

    lr: float = 0.1                     # Peak Adam learning rate (NVlabs: 0.1).
    lr_rampup: float = 0.05             # Fraction of the steps the learning rate ramps up.
    lr_rampdown: float = 0.25           # Fraction of the steps it ramps down (cosine).
    initial_noise_factor: float | None = None  # w perturbation x w_std at the start; None = 0 / 0.05 (w_avg).
    noise_ramp: float = 0.75            # Fraction of the steps over which that perturbation decays.
    noise_regularize: float = 1e5       # Weight of the noise autocorrelation penalty.
    optimize_noise: bool = True         # Optimise the per-layer noise maps too.
    w_plus_regularize: float = 0.1      # Weight of the spread of the ws around their mean (keeps W+ near W).
    feature_weight: float = 1.0         # D features (LPIPS-like).
    pixel_weight: float = 1.0           # Pixel MSE in [-1, 1].
    ssim_weight: float = 0.5            # 1 - SSIM.
    vgg_weight: float = 1.0             # VGG16 LPIPS-like term (only with `vgg`).
    vgg_resolution: int = 128           # Images are resized to this before VGG16 (cost grows with its square).
    pti_steps: int = 40                 # Pivotal tuning steps (pti=True).
    pti_lr: float = 0.01                # Their learning rate.
    pti_rank: int = 4                   # Rank of each conv weight delta.


class ReconstructionLoss:
    """Loss of a rendering against one fixed target image (its features computed once)."""

    def __init__(self, models: FaceModels, target: torch.Tensor, options: ProjectionOptions,
                 vgg: VGG16Features | None = None) -> None:
        self.models = models
        self.target = target
        self.options = options
        self.vgg = vgg
        with torch.no_grad():
            self.target_feats = models.D.features(target)
            self.target_vgg = vgg(target) if vgg is not None else None

    def __call__(self, img: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        o = self.options
        terms = {
            "features": feature_distance(self.models.D.features(img), self.target_feats).mean(),
            "pixel": (img - self.target).square().mean(),
            "ssim": 1 - ssim(img, self.target).mean(),
        }
        weights = {"features": o.feature_weight, "pixel": o.pixel_weight, "ssim": o.ssim_weight}
        if self.vgg is not None and self.target_vgg is not None:
            terms["vgg"] = feature_distance(self.vgg(img), self.target_vgg).mean()
            weights["vgg"] = o.vgg_weight
        loss = sum((weights[k] * v for k, v in terms.items()), torch.zeros([], device=img.device))
        return loss, {k: float(v.detach()) for k, v in terms.items()}


# ----------------------------------------------------------------------------------------------------
# Projection.


@dataclasses.dataclass
class ProjectionResult:
    latent: FaceLatent                  # W+ (+ noise, + PTI deltas).
    image: Image.Image                  # Its rendering, RGB res x res.
    target: Image.Image                 # The aligned face at the model's resolution (what was matched).
    metrics: dict[str, Any]             # psnr (dB), ssim, feature_distance, seconds, steps, ...


def lr_schedule(t: float, peak: float, rampup: float, rampdown: float) -> float:
    """NVlabs projector's learning rate at progress t in [0, 1]: linear ramp up, cosine ramp down."""
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    ramp = ramp * min(1.0, t / rampup) if rampup > 0 else ramp
    return peak * ramp


def measure(models: FaceModels, img: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """Reconstruction metrics of img vs target ([1, 3, res, res] in [-1, 1]).

    psnr: dB on 8-bit values. ssim: mean SSIM (1 = identical). feature_distance: squared distance of
    the attribute classifier's features (face_features, unit total variance per block on real faces)
    divided by 2 per block, so 0 = same features and ~1 = as far apart as two random real faces;
    measured with the D's features (LPIPS-like) when no classifier is installed (`feature_space`).
    """
    with torch.no_grad():
        out: dict[str, Any] = {"psnr": round(psnr(img, target), 3), "ssim": round(float(ssim(img, target).mean()), 4)}
        if models.classifier is not None:
            fa = models.classifier.features(img)
            fb = models.classifier.features(target)
            blocks = len(models.classifier.feature_scale)
            out["feature_distance"] = round(float((fa - fb).square().sum()) / (2 * blocks), 4)
            out["feature_space"] = "face_features"
        else:
            dist = feature_distance(models.D.features(img), models.D.features(target))
            out["feature_distance"] = round(float(dist.mean()), 4)
            out["feature_space"] = "D"
    return out


def project_face(
    models: FaceModels,
    aligned: Image.Image,
    steps: int = 50,
    pti: bool = False,
    progress: Progress | None = None,
    *,
    init: Literal["encoder", "w_avg"] = "encoder",
    options: ProjectionOptions | None = None,
    vgg: VGG16Features | str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> ProjectionResult:
    """Project an aligned face into the face generator (see the module docstring).

    aligned: PIL image of a face aligned like the training faces (`tryon.face.align.align_face`), any
        size (resized to the model's resolution with Lanczos).
    steps: optimisation steps after the start (0 = the encoder's output alone).
    pti: pivotal tuning after the optimisation (`options.pti_steps` steps).
    progress: called with (fraction in [0, 1], message) as the work goes on.
    init: "encoder" (W+ from the encoder; w_avg when none is installed) or "w_avg" (NVlabs' recipe in W).
    vgg: a VGG16Features, or a path to torchvision VGG16 weights, to add the VGG-LPIPS-like term.
    seed: seeds the random parts (the w perturbation of init="w_avg", the PTI factors): a run is
        reproducible.
    """
    t0 = time.perf_counter()
    options = options or ProjectionOptions()
    if not 0 <= int(steps) <= MAX_STEPS:
        raise InputError(f"steps must be between 0 and {MAX_STEPS}, got {steps}")
    if init not in ("encoder", "w_avg"):
        raise InputError(f"init must be 'encoder' or 'w_avg', got {init!r}")
    steps = int(steps)
    report = progress or (lambda fraction, message: None)
    if vgg is not None and not isinstance(vgg, VGG16Features):
        vgg = load_vgg16(vgg, device=models.device, resolution=options.vgg_resolution)
    total = steps + (options.pti_steps if pti else 0) + 1
    report(0.0, "encoding")

    device = models.device
    target = face_tensor(models, aligned)
    gen = torch.Generator().manual_seed(seed)
    use_encoder = init == "encoder" and models.encoder is not None
    with torch.no_grad():
        if use_encoder:
            assert models.encoder is not None
            start = models.encoder(target)[0]                               # [num_ws, w_dim]
        else:
            start = models.w_avg.unsqueeze(0).repeat(models.num_ws, 1)
    in_w = not use_encoder and init == "w_avg"                              # NVlabs: one w for all layers.
    lr = options.lr
    w_noise = options.initial_noise_factor if options.initial_noise_factor is not None else (0.05 if in_w else 0.0)

    w_opt = (start[:1] if in_w else start).clone().requires_grad_(True)    # [1 or num_ws, w_dim]
    noise = [n.to(device).clone() for n in models.const_noise()]
    params: list[torch.Tensor] = [w_opt]
    if options.optimize_noise and steps > 0:
        for n in noise:
            n.requires_grad_(True)
        params += noise
    loss_fn = ReconstructionLoss(models, target, options, vgg)
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=lr)
    last: dict[str, float] = {}

    def expand(w: torch.Tensor) -> torch.Tensor:
        return (w.repeat(models.num_ws, 1) if in_w else w).unsqueeze(0)      # [1, num_ws, w_dim]

    for step in range(steps):
        t = step / steps
        for group in optimizer.param_groups:
            group["lr"] = lr_schedule(t, lr, options.lr_rampup, options.lr_rampdown)
        w_in = w_opt
        if w_noise > 0:
            scale = models.w_std * w_noise * max(0.0, 1.0 - t / options.noise_ramp) ** 2
            w_in = w_opt + torch.randn(w_opt.shape, generator=gen).to(device) * scale
        img = synthesize(models, expand(w_in), noise)
        loss, last = loss_fn(img)
        if options.w_plus_regularize > 0 and not in_w:
            spread = (w_opt - w_opt.mean(dim=0, keepdim=True)).square().sum(dim=1).mean() / models.w_std**2
            loss = loss + options.w_plus_regularize * spread
            last["w_plus_spread"] = float(spread.detach())
        if options.optimize_noise:
            reg = noise_regularization(noise)
            loss = loss + options.noise_regularize * reg
            last["noise_reg"] = float(reg.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if options.optimize_noise:
            _renormalize_noise(noise)
        if step % 5 == 4 or step == steps - 1:
            report((step + 1) / total, f"optimising {step + 1}/{steps}")

    ws = expand(w_opt.detach())
    noise_out = [n.detach() for n in noise] if options.optimize_noise and steps > 0 else None
    pti_state: dict[str, np.ndarray] | None = None
    synthesis = None
    if pti:
        pti_state, synthesis = _pivotal_tuning(models, ws, noise_out, loss_fn, options, report, steps, total, gen)

    with torch.no_grad():
        img = synthesize(models, ws, noise_out, synthesis)
    metrics = measure(models, img, target)
    metrics.update(
        seconds=round(time.perf_counter() - t0, 3),
        steps=steps,
        init="encoder" if use_encoder else "w_avg",
        pti_steps=options.pti_steps if pti else 0,
        vgg=vgg is not None,
        final_loss={k: round(v, 5) for k, v in last.items()},
    )
    latent = FaceLatent(
        ws=ws[0].cpu().numpy(),
        noise=[n.cpu().numpy() for n in noise_out] if noise_out is not None else None,
        meta={
            "generator_sha256": models.generator_sha256,
            "method": "encoder" if use_encoder and steps == 0 else "optimisation",
            "init": metrics["init"],
            "steps": steps,
            "pti_steps": metrics["pti_steps"],
            "resolution": models.resolution,
        },
        pti=pti_state,
    )
    report(1.0, "done")
    return ProjectionResult(latent=latent, image=tensor_to_image(img), target=tensor_to_image(target), metrics=metrics)


def refine_face(
    models: FaceModels,
    latent: FaceLatent,
    aligned: Image.Image,
    steps: int | None = None,
    progress: Progress | None = None,
    *,
    options: ProjectionOptions | None = None,
    seed: int = 0,
) -> ProjectionResult:
    """Pivotal tuning of an already projected face: `latent` (its ws and noise, frozen) is the pivot,
    the synthesis network is tuned around it to match `aligned` (the photo `latent` was projected from).

    The service runs this as a follow-up job (`face.refine`) so that the first result comes from the
    fast projection. steps: tuning steps (None = `options.pti_steps`). Returns the latent with the
    deltas (its earlier deltas, if any, are replaced) and the tuned reconstruction.
    """
    t0 = time.perf_counter()
    options = options or ProjectionOptions()
    steps = options.pti_steps if steps is None else int(steps)
    if not 1 <= steps <= MAX_STEPS:
        raise InputError(f"refinement steps must be between 1 and {MAX_STEPS}, got {steps}")
    options = dataclasses.replace(options, pti_steps=steps)
    report = progress or (lambda fraction, message: None)
    report(0.0, "tuning")
    device = models.device
    target = face_tensor(models, aligned)
    ws = torch.from_numpy(np.asarray(latent.ws, np.float32)).to(device).unsqueeze(0)
    assert_shape(ws, [1, models.num_ws, None])
    noise = [torch.from_numpy(np.asarray(n, np.float32)).to(device) for n in latent.noise] if latent.noise else None
    loss_fn = ReconstructionLoss(models, target, options)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        before = measure(models, synthesize(models, ws, noise), target)
    pti_state, synthesis = _pivotal_tuning(models, ws, noise, loss_fn, options, report, 0, steps + 1, gen)
    with torch.no_grad():
        img = synthesize(models, ws, noise, synthesis)
    metrics = measure(models, img, target)
    metrics.update(seconds=round(time.perf_counter() - t0, 3), pti_steps=steps,
                   before={k: before[k] for k in ("psnr", "ssim", "feature_distance")})
    refined = latent.replace(pti=pti_state, meta={**latent.meta, "pti_steps": steps})
    report(1.0, "done")
    return ProjectionResult(latent=refined, image=tensor_to_image(img), target=tensor_to_image(target), metrics=metrics)


def _pivotal_tuning(
    models: FaceModels,
    ws: torch.Tensor,
    noise: list[torch.Tensor] | None,
    loss_fn: ReconstructionLoss,
    options: ProjectionOptions,
    report: Progress,
    done: int,
    total: int,
    gen: torch.Generator,
) -> tuple[dict[str, np.ndarray], SynthesisNetwork]:
    """Fine-tune low-rank deltas of a private copy of the synthesis network around the pivot `ws`.

    Returns (the deltas as stored in a latent: float16 numpy, the tuned synthesis copy)."""
    # functional_call swaps parameters in place while it runs: tune a private copy, never the shared G.
    private = copy.deepcopy(models.G.synthesis)
    base = {name: p.detach() for name, p in private.named_parameters()}
    factors: dict[str, torch.Tensor] = {}
    for mod_name, module in models.G.synthesis.named_modules():
        if not isinstance(module, SynthesisLayer | ToRGBLayer):
            continue
        w = module.weight
        fan_out, fan_in = int(w.shape[0]), int(np.prod(w.shape[1:]))
        rank = max(1, min(options.pti_rank, fan_out, fan_in))
        a = torch.randn([rank, fan_in], generator=gen) / math.sqrt(fan_in)
        factors[f"{mod_name}.weight@a"] = a.to(models.device).requires_grad_(True)
        factors[f"{mod_name}.weight@b"] = torch.zeros([fan_out, rank], device=models.device, requires_grad=True)
        factors[f"{mod_name}.bias"] = torch.zeros_like(module.bias).requires_grad_(True)
    optimizer = torch.optim.Adam(list(factors.values()), lr=options.pti_lr)
    for step in range(options.pti_steps):
        deltas = pti_deltas(factors, base)
        tuned = {name: base[name] + d for name, d in deltas.items()}
        noise_in = None if noise is None else [n.reshape(1, 1, *n.shape[-2:]) for n in noise]
        img = torch.func.functional_call(
            private, tuned, (ws,),
            {"noise": noise_in, "noise_mode": "const", "fused_modconv": models.device.type == "cuda"},
        )
        loss, _ = loss_fn(img)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 5 == 4 or step == options.pti_steps - 1:
            report((done + step + 1) / total, f"tuning {step + 1}/{options.pti_steps}")
    stored = {k: v.detach().cpu().numpy().astype(np.float16) for k, v in factors.items()}
    return stored, pti_synthesis(models, stored)
