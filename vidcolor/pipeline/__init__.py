"""Inference pipeline: decode, batch, generate, smooth, encode."""
