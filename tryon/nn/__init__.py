"""StyleGAN2 networks (NVlabs stylegan2-ada-pytorch compatible names and math)."""

from tryon.nn.misc import PRECISIONS, cpu_supports_bf16, resolve_precision
from tryon.nn.networks import (
    Conv2dLayer,
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    FullyConnectedLayer,
    Generator,
    MappingNetwork,
    MinibatchStdLayer,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
    block_dtype,
    modulated_conv2d,
)

__all__ = [
    "PRECISIONS",
    "Conv2dLayer",
    "Discriminator",
    "DiscriminatorBlock",
    "DiscriminatorEpilogue",
    "FullyConnectedLayer",
    "Generator",
    "MappingNetwork",
    "MinibatchStdLayer",
    "SynthesisBlock",
    "SynthesisLayer",
    "SynthesisNetwork",
    "ToRGBLayer",
    "block_dtype",
    "cpu_supports_bf16",
    "modulated_conv2d",
    "resolve_precision",
]
