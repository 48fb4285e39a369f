"""What a colorize run reports: frames, time, damage met, streams copied."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunReport:
    """What a run did, for the CLI's summary line and for scripts.

    Attributes:
        output: the file written.
        frames: frames written.
        seconds: wall time.
        corrupt_packets: packets the decoder skipped.
        dropped: frames of the range that could not be decoded.
        concealed: frames decoded with damage the decoder patched over.
        copied_streams: audio/subtitle/data streams copied.
        preview: the contact sheet written, if any.
        rendered: frames rendered by this run when fewer than ``frames`` (a resumed run kept
            the rest from before); None when every frame was rendered now.
    """

    output: str
    frames: int
    seconds: float
    corrupt_packets: int = 0
    dropped: int = 0
    concealed: int = 0
    copied_streams: int = 0
    preview: str | None = None
    rendered: int | None = None

    @property
    def fps(self) -> float:
        """Frames rendered per second of this run (a resumed run counts only its own frames)."""
        done = self.frames if self.rendered is None else self.rendered
        return done / self.seconds if self.seconds > 0 else 0.0
