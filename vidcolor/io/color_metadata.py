"""Colour metadata: FFmpeg's names for the colour enums, and reading them from a stream."""

from __future__ import annotations

import av

# ffmpeg's names for the colour enums (libavutil/pixdesc.c), indexed by their values.
# "unspecified" and "reserved" values are absent and read as None.
PRIMARIES_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film",
    9: "bt2020", 10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213",
}
TRC_NAMES = {
    1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "linear",
    9: "log100", 10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1",
    14: "bt2020-10", 15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67",
}
COLORSPACE_NAMES = {
    0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco",
    9: "bt2020nc", 10: "bt2020c", 11: "smpte2085", 12: "chroma-derived-nc",
    13: "chroma-derived-c", 14: "ictcp",
}
RANGE_FULL = 2  # AVCOL_RANGE_JPEG
RANGE_LIMITED = 1  # AVCOL_RANGE_MPEG

_UNSPECIFIED = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}


def _color_value(ctx, first_frame, attr: str) -> int:
    """A colour enum from the codec context, falling back to the first frame when unspecified."""
    value = int(getattr(ctx, attr, _UNSPECIFIED[attr]) or 0)
    if value == _UNSPECIFIED[attr] and first_frame is not None:
        value = int(getattr(first_frame, attr, value) or 0)
    return value


def color_names(ctx, first_frame, decoder_fmt: str) -> tuple[str | None, str | None, str | None, bool]:
    """A video stream's colour tags as FFmpeg names them.

    Args:
        ctx: the stream's codec context.
        first_frame: its first decoded frame (asked where the context is unspecified), or None.
        decoder_fmt: the decoder's pixel format (an RGB one makes colorspace 0 mean "gbr").

    Returns:
        ``(primaries, transfer, colorspace, full_range)``; a name is None when unspecified.
    """
    primaries = PRIMARIES_NAMES.get(_color_value(ctx, first_frame, "color_primaries"))
    trc = TRC_NAMES.get(_color_value(ctx, first_frame, "color_trc"))
    space = _color_value(ctx, first_frame, "colorspace")
    is_rgb = av.video.format.VideoFormat(decoder_fmt).is_rgb
    # 0 means "RGB" in ffmpeg's enum, but it is also the zero a YUV stream reports when untagged.
    colorspace = COLORSPACE_NAMES.get(space) if (space != 0 or is_rgb) else None
    full = _color_value(ctx, first_frame, "color_range") == RANGE_FULL
    return primaries, trc, colorspace, full
