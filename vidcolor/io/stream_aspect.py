"""Give an output stream its sample aspect ratio at the container level, which PyAV cannot set.

Matroska writes a track's display size, and AVI its ``vprp`` header, from the muxer's own
``AVStream.sample_aspect_ratio``, not from the codec parameters. FFmpeg's command-line tool
sets that field; PyAV (18) has no setter for it. H.264/H.265 carry the ratio in their own
bitstream, so players found it anyway, but FFV1 does not: an anamorphic source (DV, 32:27)
written as FFV1 played squeezed. This module sets that one field through ``ctypes``, and
only after checking that the memory it found is the stream's ``AVStream`` (its class pointer,
index, time base and frame rate agree with what PyAV reports); otherwise it changes nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av

log = logging.getLogger("vidcolor")

_POINTER = ctypes.sizeof(ctypes.c_void_p)
# PyAV's Stream is a Cython class: after the object header comes its method table, then its
# first C field, ``AVStream *ptr`` (av/stream.pxd).
_STREAM_PTR_OFFSET = object.__basicsize__ + _POINTER
# Offsets in FFmpeg's AVStream (libavformat/avformat.h, unchanged from FFmpeg 6.1 to 8):
# av_class, index, id, codecpar, priv_data, time_base, start_time, duration, nb_frames,
# disposition, discard, sample_aspect_ratio, metadata, avg_frame_rate.
_INDEX_OFFSET = _POINTER
_TIME_BASE_OFFSET = 4 * _POINTER
_SAR_OFFSET = _TIME_BASE_OFFSET + 8 + 3 * 8 + 4 + 4
_AVG_RATE_OFFSET = _SAR_OFFSET + 8 + _POINTER


# PyAV major versions whose Stream layout was checked (the first C field after the method
# table is the AVStream pointer). Another version could place other data there, and reading
# through it could crash the process, so such a version gets no container-level ratio.
_CHECKED_PYAV_MAJORS = {"18"}


class _Rational(ctypes.Structure):
    _fields_ = [("num", ctypes.c_int), ("den", ctypes.c_int)]


def _loaded_libavformat() -> list[str]:
    """Paths of the libavformat PyAV may use: those mapped into this process, else PyAV's own
    bundled copy and the system's."""
    found: list[str] = []
    maps = Path("/proc/self/maps")
    if maps.exists():
        # Only libraries already mapped (PyAV's, OpenCV's): loading another FFmpeg into the
        # process just to look would bring in a library nothing uses.
        found += sorted({line.split()[-1] for line in maps.read_text().splitlines() if "libavformat" in line})
        if found:
            return found
    package = Path(av.__file__).parent
    for folder in (package.parent / "av.libs", package / ".dylibs"):
        found += sorted(str(p) for p in folder.glob("libavformat*"))
    system = ctypes.util.find_library("avformat")
    return found + ([system] if system else [])


@lru_cache(maxsize=1)
def _stream_class_addresses() -> tuple[int, ...]:
    """Addresses of FFmpeg's AVStream class (``av_stream_get_class()``) in each libavformat
    found; more than one can be mapped (OpenCV bundles its own), and only the one PyAV uses
    matches its streams, which ``_av_stream_address`` checks."""
    found = []
    for path in _loaded_libavformat():
        try:
            library = ctypes.CDLL(path)
            library.av_stream_get_class.restype = ctypes.c_void_p
            address = library.av_stream_get_class()
        except (OSError, AttributeError):
            continue
        if address and address not in found:
            found.append(address)
    return tuple(found)


def _av_stream_address(stream) -> int | None:
    """The ``AVStream*`` behind a PyAV stream, or None when it cannot be confirmed."""
    if sys.implementation.name != "cpython" or not isinstance(stream, av.stream.Stream):
        return None
    if av.__version__.split(".")[0] not in _CHECKED_PYAV_MAJORS:
        return None  # an unchecked object layout: do not even read through it
    classes = _stream_class_addresses()
    address = ctypes.c_void_p.from_address(id(stream) + _STREAM_PTR_OFFSET).value
    if not classes or not address or ctypes.c_void_p.from_address(address).value not in classes:
        return None
    if ctypes.c_int.from_address(address + _INDEX_OFFSET).value != stream.index:
        return None
    for offset, expected in ((_TIME_BASE_OFFSET, stream.time_base), (_AVG_RATE_OFFSET, stream.average_rate)):
        value = _Rational.from_address(address + offset)
        if expected is not None and (value.den == 0 or Fraction(value.num, value.den) != expected):
            return None
    return address


def set_container_sample_aspect_ratio(stream, sar: Fraction) -> bool:
    """Store ``sar`` as the output stream's container-level sample aspect ratio (call before
    the header is written).

    Args:
        stream: a PyAV output video stream whose time base is already set.
        sar: the pixel aspect ratio, e.g. ``Fraction(32, 27)``.

    Returns:
        True when set; False when this PyAV build could not be confirmed (nothing changed).
    """
    address = _av_stream_address(stream)
    if address is None:
        log.debug("cannot set the container's sample aspect ratio with this PyAV build")
        return False
    _Rational.from_address(address + _SAR_OFFSET).num = sar.numerator
    _Rational.from_address(address + _SAR_OFFSET).den = sar.denominator
    return True
