"""The codecs vidcolor writes: one record per codec, and the rules that pick one.

A record says which FFmpeg encoder a ``--codec`` name stands for, which chroma layouts and bit
depths it keeps, which containers hold it, how it takes ``--crf`` and which private options it
is opened with. ``encode`` and ``merge`` ask the records rather than test codec names, so a
new codec is one record here (and its line in the README). Opening encoders is ``encode``'s job;
nothing here needs FFmpeg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from vidcolor.errors import UsageError

AUTO = "auto"  # NVENC H.264 beside a CUDA model when it opens, the portable codec otherwise
# What "auto" is for outputs that must be alike on every machine (farm chunks, resumable
# segments): chunks from nodes with and without NVENC would not merge.
PORTABLE_CODEC = "x264"

# Chroma families x264/x265 cannot encode, mapped to one that keeps all of the source's chroma detail.
_WIDER_FAMILY = {"411": "422", "440": "444", "410": "420"}
_PRORES_PROFILE_HQ = "3"
_PRORES_PROFILE_4444 = "4"


class _Layout(Protocol):
    """What an options function reads of the output layout (``encode.OutputFormat``)."""

    chroma_shift: tuple[int, int]


@dataclass(frozen=True)
class Codec:
    """One codec vidcolor writes.

    ``layout`` maps the source's chroma family (``"420"``...) and bit depth to what the codec
    writes (``encode.output_format`` then checks the encoder takes that pixel format, else 4:4:4).
    ``options`` gives the encoder's private options for a ``--crf`` (None: the default) and the
    output layout.
    """

    name: str  # the --codec value
    encoder: str  # FFmpeg's encoder
    stream_codec: str  # what a decoder calls its streams (merge knows chunks by it)
    max_depth: int  # the deepest samples it writes
    containers: str  # where it can go, for the hint when a container refuses it
    layout: Callable[[str, int], tuple[str, int]]
    options: Callable[[int | None, _Layout], dict[str, str]]
    default_crf: int | None = None  # None: it takes no --crf ...
    crf_unused: str = ""  # ... and this says why
    # Options added when the encoder does not open with ``options`` for a frame's size.
    small_frame_options: dict[str, str] = field(default_factory=dict)
    hardware: bool = False  # NVIDIA's encoder: 8 bits, frames up to NVENC_MAX_SIDE, a GPU to open
    software_twin: str | None = None  # the software codec writing the same bitstream (container checks)
    keeps_deep_sources: bool = False  # named when another codec cuts a deep source's bits
    whole_chroma_samples: bool = False  # needs a width and height of whole chroma samples
    stores_range: bool = True  # False: its bitstream has no range flag, so it is read as limited
    range_lost_in: frozenset[str] = frozenset()  # containers in which the range is lost anyway
    intra_only: bool = False  # every frame a keyframe
    mp4_tag: str | None = None  # the codec tag MP4/MOV players require


def _software_layout(max_depth: int) -> Callable[[str, int], tuple[str, int]]:
    """x264/x265: the source's family where they can encode it, its depth up to ``max_depth``."""

    def layout(family: str, depth: int) -> tuple[str, int]:
        return _WIDER_FAMILY.get(family, family), min(8 if depth <= 8 else 10 if depth <= 10 else 12, max_depth)

    return layout


def _nvenc_layout(family: str, depth: int) -> tuple[str, int]:
    """NVENC: 8-bit 4:2:0, or 4:4:4 for 4:4:4 sources (deeper sources are refused up front)."""
    return ("444" if family == "444" else "420"), 8


def _prores_layout(family: str, depth: int) -> tuple[str, int]:
    """ProRes: 4:2:2 10-bit, 4:4:4 10-bit for 4:4:4 sources."""
    return ("444" if family == "444" else "422"), 10


def _kept_layout(family: str, depth: int) -> tuple[str, int]:
    """FFV1: the source's family and depth exactly, so luma can be compared bit for bit."""
    return family, depth


def _crf_options(default: int, **extra: str) -> Callable[[int | None, _Layout], dict[str, str]]:
    """x264/x265: constant rate factor, ``default`` when ``--crf`` is not given."""
    return lambda crf, fmt: {"crf": str(default if crf is None else crf), **extra}


def _nvenc_options(default: int) -> Callable[[int | None, _Layout], dict[str, str]]:
    """NVENC: constant quality (cq plays crf's part; b=0 lifts the bitrate cap), high-quality preset."""
    return lambda crf, fmt: {"preset": "p5", "tune": "hq", "rc": "vbr", "cq": str(default if crf is None else crf),
                             "b": "0"}


def _prores_options(crf: int | None, fmt: _Layout) -> dict[str, str]:
    """ProRes: 4444 for 4:4:4 output, HQ otherwise."""
    return {"profile": _PRORES_PROFILE_4444 if fmt.chroma_shift == (0, 0) else _PRORES_PROFILE_HQ, "vendor": "apl0"}


def _ffv1_options(crf: int | None, fmt: _Layout) -> dict[str, str]:
    """FFV1 version 3: multithreaded slices with CRCs, every frame a keyframe (lossless archive)."""
    return {"level": "3", "slicecrc": "1", "coder": "range_def", "context": "1"}


_RECORDS = (
    Codec("x264", "libx264", "h264", max_depth=10, containers=".mp4 or .mkv", layout=_software_layout(10),
          options=_crf_options(16, preset="medium"), default_crf=16, whole_chroma_samples=True),
    Codec("x265", "libx265", "hevc", max_depth=12, containers=".mp4 or .mkv", layout=_software_layout(12),
          options=_crf_options(18, preset="medium", **{"x265-params": "log-level=error"}), default_crf=18,
          keeps_deep_sources=True, whole_chroma_samples=True, mp4_tag="hvc1"),
    Codec("prores", "prores_ks", "prores", max_depth=10, containers=".mov or .mkv", layout=_prores_layout,
          options=_prores_options, crf_unused="its profile sets the quality", stores_range=False),
    # FFV1 picks at least two slices itself, and in version 3 their edges must fall on chroma
    # samples, which a tiny frame cannot give (3x3 or 4x3 in 4:2:0, 1 pixel wide): it refuses
    # to open ("Function not implemented"). One slice fits small frames; a larger frame that
    # no slicing fits is refused up front (encode._check_ffv1_slices).
    Codec("ffv1", "ffv1", "ffv1", max_depth=16, containers=".mkv", layout=_kept_layout, options=_ffv1_options,
          crf_unused="lossless", small_frame_options={"slices": "1"}, keeps_deep_sources=True,
          range_lost_in=frozenset({"avi"}), intra_only=True),
    Codec("nvenc-h264", "h264_nvenc", "h264", max_depth=8, containers=".mp4 or .mkv", layout=_nvenc_layout,
          options=_nvenc_options(18), default_crf=18, hardware=True, software_twin="x264", whole_chroma_samples=True),
    Codec("nvenc-hevc", "hevc_nvenc", "hevc", max_depth=8, containers=".mp4 or .mkv", layout=_nvenc_layout,
          options=_nvenc_options(20), default_crf=20, hardware=True, software_twin="x265", whole_chroma_samples=True,
          mp4_tag="hvc1"),
)

CODECS: dict[str, Codec] = {record.name: record for record in _RECORDS}
CODEC_CHOICES: tuple[str, ...] = (AUTO, *CODECS)  # what --codec takes
HARDWARE_CODECS: tuple[str, ...] = tuple(name for name, record in CODECS.items() if record.hardware)


def codec_record(name: str) -> Codec:
    """The record of a codec vidcolor writes.

    Args:
        name: a ``--codec`` name other than ``auto``.

    Returns:
        Its ``Codec``.

    Raises:
        UsageError: for a name vidcolor does not write.
    """
    record = CODECS.get(name)
    if record is None:
        raise UsageError(f"unknown codec {name!r}; use one of {', '.join(CODECS)}")
    return record


def portable_codec(name: str) -> str:
    """The codec an output that must merge with others is written with (farm chunks, resumable
    segments; and what ``auto`` falls back to where NVENC is out): ``auto`` is ``PORTABLE_CODEC``.

    Args:
        name: ``--codec`` as given.

    Returns:
        ``PORTABLE_CODEC`` for ``auto``, else ``name`` unchanged (checked elsewhere).
    """
    return PORTABLE_CODEC if name == AUTO else name


def codec_for_stream(stream_codec: str) -> Codec | None:
    """The software codec that writes streams a decoder calls ``stream_codec`` (merge's view of a chunk).

    Args:
        stream_codec: FFmpeg's codec name of a stream, e.g. ``"h264"``.

    Returns:
        Its ``Codec`` (the software one where NVENC writes the same bitstream), or None when
        vidcolor writes no such streams.
    """
    for record in _RECORDS:
        if record.stream_codec == stream_codec and not record.hardware:
            return record
    return None


def effective_crf(codec: str, crf: int | None) -> int | None:
    """The quality setting an encoder really runs with, for comparing runs' settings.

    Args:
        codec: a vidcolor codec name (``"x264"``...), as written (not ``"auto"``).
        crf: ``--crf`` as given, or None.

    Returns:
        The CRF (the codec's default when not given), or None for codecs that take none
        (FFV1, ProRes), so an unused or restated ``--crf`` does not count as another setting.

    Raises:
        UsageError: for an unknown codec.
    """
    default = codec_record(codec).default_crf
    if default is None:
        return None
    return default if crf is None else crf


def crf_unused(name: str) -> str | None:
    """Why ``--crf`` does nothing with a codec, or None when it takes one.

    Args:
        name: ``--codec`` as given (``auto`` always takes one).

    Returns:
        A few words (``"lossless"``), or None.
    """
    record = CODECS.get(name)
    return record.crf_unused if record is not None and record.default_crf is None else None
