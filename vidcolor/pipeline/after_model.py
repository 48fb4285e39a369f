"""What follows the model, the same for ``colorize`` and ``eval``: smooth, reference, style.

One chain, one order, for every frame in display order:

1. smooth: the flow-guided ``ChromaSmoother`` (chroma, or a style's colour-coefficient maps);
2. reference: lean on a hand-coloured reference's hint *after* smoothing, so the reference
   frame comes out as it was given (smoothing it would drag the previous frames' colours in);
3. style: apply the smoothed coefficient maps to the luma the model saw, as (luma change, Cb,
   Cr) in the output's matrix. Smoothing runs before this, on the maps, so it never drags old
   edges along (``pipeline.style``).

References steer natural colour only (``ColorizeConfig`` refuses them with a style), so in
style mode step 2 never has a hint.
"""

from __future__ import annotations

import numpy as np

from vidcolor.pipeline.hint_windows import Hint
from vidcolor.pipeline.reference import blend
from vidcolor.pipeline.smooth import ChromaSmoother
from vidcolor.pipeline.style import style_offsets


class AfterModel:
    """The after-model chain of one stream of frames (it holds the smoother's state).

    Args:
        smoother: the stream's smoother (``ChromaSmoother(0)`` for none).
        style_matrix: in style mode, the matrix the styled frame is written in; None in
            colorize mode (the result stays BT.601 chroma).
    """

    def __init__(self, smoother: ChromaSmoother, style_matrix: str | None = None):
        self.smoother = smoother
        self.style_matrix = style_matrix

    def __call__(self, luma: np.ndarray, chroma: np.ndarray, hint: Hint | None = None) -> np.ndarray:
        """One frame through the chain, in display order.

        Args:
            luma: ``(h, w)`` float32 luma the model saw (render size).
            chroma: ``(C, h, w)`` the model's output: chroma, or the style's coefficient maps.
            hint: the frame's reference hint (chroma, confidence), or None.

        Returns:
            ``(2, h, w)`` BT.601 chroma, or in style mode ``(3, h, w)`` (luma change, Cb, Cr).
        """
        out = blend(self.smoother(luma, chroma), hint)
        if self.style_matrix is not None:
            out = style_offsets(out, luma, self.style_matrix)
        return out
