"""Names of YCbCr matrices, shared by the torch colour code and the numpy-only io package."""

from __future__ import annotations

# ffmpeg's colorspace names mapped to our matrices; untagged video follows the common
# convention (SD: BT.601, HD: BT.709), see ``default_matrix``.
FFMPEG_MATRIX = {
    "bt709": "bt709",
    "bt470bg": "bt601",
    "smpte170m": "bt601",
    "fcc": "bt601",
    "bt2020nc": "bt2020",
    "bt2020_ncl": "bt2020",
    "bt2020c": "bt2020",
}
# The ffmpeg colorspace tag of each of our matrices, for planes made with it (an RGB source
# converted by decode): the names FFmpeg itself writes for them.
MATRIX_TAGS = {"bt601": "smpte170m", "bt709": "bt709", "bt2020": "bt2020nc"}


def default_matrix(height: int) -> str:
    """Matrix to assume for untagged video: BT.709 for HD (height >= 720), else BT.601.

    Args:
        height: frame height in pixels.

    Returns:
        ``"bt709"`` or ``"bt601"``.
    """
    return "bt709" if height >= 720 else "bt601"


def matrix_from_ffmpeg(name: str | None, height: int) -> str:
    """Map an ffmpeg colorspace name (e.g. ``"bt709"``, ``"smpte170m"``) to our matrix name.

    Args:
        name: the stream's colorspace name, or None/"unknown".
        height: frame height, for the default when the stream is untagged.

    Returns:
        One of ``"bt601"``, ``"bt709"``, ``"bt2020"``.
    """
    if name and str(name).lower() in FFMPEG_MATRIX:
        return FFMPEG_MATRIX[str(name).lower()]
    return default_matrix(height)
