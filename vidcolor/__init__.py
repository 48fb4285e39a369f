"""vidcolor: colorize black-and-white video and apply painting styles, faithfully.

Python API (the CLI calls the same functions)::

    import vidcolor
    report = vidcolor.colorize_video("film.mkv", "film_colour.mkv", codec="ffv1", smooth=0.8)
    info = vidcolor.probe("film.mkv")
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["colorize_video", "probe", "__version__"]


def __getattr__(name: str):
    # Imported lazily so `import vidcolor` stays quick and torch loads only when needed.
    if name == "colorize_video":
        from vidcolor.pipeline.run import colorize_video

        return colorize_video
    if name == "probe":
        from vidcolor.io.probe import probe

        return probe
    raise AttributeError(name)
