"""Video I/O: probe, decode to YUV planes, encode faithfully, remux and merge.

Numpy and PyAV only (no torch), so the farm's merge step and ``vidcolor probe`` stay light.

- ``probe``: streams, timing, colour metadata, grey/tinted/colour verdict (its parts:
  ``inputs``, ``packet_scan``, ``pixel_formats``, ``color_metadata``, ``streams``, ``verdict``,
  ``report``, ``media_files``, ``media_info``).
- ``decode``: frames as YUV planes straight from the decoder; ``stills``: still images.
- ``codecs``: the codecs vidcolor writes, one record each, and the rule that picks one.
- ``encode``: planes to a file keeping pts, time base, colour tags and other streams.
- ``remux``: packet copies of the source's other streams; ``merge``: chunk merging.
- ``timing``: frame ranges and durations.
- ``atomic``: temporary-name-then-rename output.
"""

from vidcolor.io.atomic import atomic_output
from vidcolor.io.codecs import CODECS
from vidcolor.io.decode import DecodeStats, Frame, iter_frames
from vidcolor.io.encode import OutputFormat, OutputWriter, check_output_supported, output_format, shift_bits
from vidcolor.io.media_files import media_kind
from vidcolor.io.media_info import MediaInfo, StreamInfo, VideoStreamInfo
from vidcolor.io.merge import MergeReport, merge_chunks
from vidcolor.io.packet_scan import scan_timestamps
from vidcolor.io.probe import probe
from vidcolor.io.report import format_report
from vidcolor.io.timing import clamp_frame_range, frame_durations, parse_frame_range

__all__ = [
    "CODECS", "DecodeStats", "Frame", "MediaInfo", "MergeReport", "OutputFormat", "OutputWriter", "StreamInfo",
    "VideoStreamInfo", "atomic_output", "check_output_supported", "clamp_frame_range", "format_report",
    "frame_durations", "iter_frames", "media_kind", "merge_chunks", "output_format", "parse_frame_range", "probe",
    "scan_timestamps", "shift_bits",
]
