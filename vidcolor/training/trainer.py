"""The frame-level trainer: two phases (colorize, then style), EMA, atomic checkpoints.

A run lives in a numbered folder (``runs/0003-base``) holding the resolved ``config.toml``,
``log.txt``, sample grids (grey input / output / truth) and ``checkpoint.pt``. ``--resume``
restores the models, optimizers, step and RNG state, and the data stream depends only on the
step (see ``data.py``), so a resumed run gives the same weights as an uninterrupted one.
The trainer only orders the updates; what each update optimises is ``losses.Objective``'s job.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vidcolor.color import rgb_to_luma, ycbcr_to_rgb
from vidcolor.config import TrainConfig, dump_toml, from_dict, to_dict
from vidcolor.devices import pick_device
from vidcolor.errors import TrainingError
from vidcolor.losses.objective import Objective
from vidcolor.losses.perceptual import gram
from vidcolor.models.discriminator import build_discriminator
from vidcolor.models.features import load_vgg_features
from vidcolor.models.generator import build_generator
from vidcolor.models.weights import load_generator, save_generator
from vidcolor.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vidcolor.training.data import DataOptions, PairDataset, load_photo, load_sources, make_loader

log = logging.getLogger("vidcolor.train")
SAMPLE_INDEX_BASE = 10**15  # dataset items used for sample grids, far from training items
SAMPLE_COUNT = 6


def next_run_dir(root: Path, name: str) -> Path:
    """The next numbered run folder, e.g. ``runs/0004-base``.

    Args:
        root: folder holding runs.
        name: the config's run name.

    Returns:
        A path that does not exist yet.
    """
    root.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in root.iterdir() if (m := re.match(r"(\d{4})-", p.name))]
    return root / f"{max(numbers, default=0) + 1:04d}-{name}"


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # workers share few cores with the training process


class Trainer:
    """Owns one run: models, optimizers, data and the update order.

    Args:
        config: the resolved training config.
        run_dir: the run folder (created if missing).
        quiet: plain log lines instead of a progress bar.
        initialise: start the generator from ``config.init_from`` (a resume skips this: its
            checkpoint holds the weights, and the model it started from may be gone).
    """

    def __init__(self, config: TrainConfig, run_dir: Path, quiet: bool = False, initialise: bool = True):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.device = pick_device(config.device)
        self.amp = config.amp and self.device.type == "cuda"
        self._setup_logging()

        style_names = ("natural",) + tuple(Path(p).stem for p in config.style_images)
        if config.model.style_names != style_names:
            config = from_dict(TrainConfig, {**to_dict(config), "model": {**to_dict(config.model), "style_names": list(style_names)}})
        self.config = config
        torch.manual_seed(config.seed)
        self.generator = build_generator(config.model).to(self.device)
        if config.init_from and initialise:
            self._init_generator(config.init_from)
        self.discriminator = build_discriminator(config.discriminator).to(self.device)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.vgg = load_vgg_features(config.loss.vgg_weights, config.loss.vgg_layers).to(self.device)
        log.info("VGG16 features: %s%s", self.vgg.source,
                 "" if self.vgg.source.startswith("imagenet") else " (ImageNet weights not in the torch cache)")
        self.objective = Objective(config.loss, self.vgg, self._style_grams())
        self.step = 0
        self.data_paths: list[str] = []  # what train() was given; a resume uses it again
        self.total_steps = config.steps_colorize + config.steps_style
        (self.run_dir / "config.toml").write_text(dump_toml(to_dict(config)), encoding="utf-8")

    # ----- set-up -----------------------------------------------------------------------
    def _setup_logging(self) -> None:
        handler = logging.FileHandler(self.run_dir / "log.txt", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        log.handlers = [handler]
        if self.quiet:
            stream = logging.StreamHandler(sys.stderr)
            stream.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
            log.addHandler(stream)
        log.setLevel(logging.INFO)
        log.propagate = False

    def _init_generator(self, name_or_path: str) -> None:
        """Start the generator from a trained model (e.g. add styles to the default model).

        Tensors whose shapes match are copied; the style table keeps the rows both models
        share (natural colour first) and new styles start from natural colour's row, so the
        style phase begins from the model's own natural colours.
        """
        source, _ = load_generator(name_or_path)
        theirs = source.state_dict()
        ours = self.generator.state_dict()
        copied = 0
        for key, value in theirs.items():
            if key not in ours:
                continue
            if ours[key].shape == value.shape:
                ours[key] = value.clone()
                copied += 1
            elif key == "style_embedding.weight" and ours[key].shape[1:] == value.shape[1:]:
                rows = min(ours[key].shape[0], value.shape[0])
                ours[key][:rows] = value[:rows]
                ours[key][rows:] = value[0]
                copied += 1
        self.generator.load_state_dict(ours)
        log.info("generator initialised from %s (%d of %d tensors)", name_or_path, copied, len(ours))

    def _style_grams(self) -> dict[str, torch.Tensor] | None:
        """Gram matrices of each style image at crop scale (row 0, natural, is unused)."""
        if not self.config.style_images:
            return None
        grams: dict[str, list[torch.Tensor]] = {}
        side = self.config.loss.vgg_size or self.config.crop
        for path in self.config.style_images:
            img = load_photo(Path(path), max_side=4 * side)
            if img is None:
                raise TrainingError(f"{path}: style image not found or not an image")
            h, w = img.shape[:2]
            scale = 2 * side / min(h, w)
            img = cv2.resize(img, (max(round(w * scale), side), max(round(h * scale), side)), interpolation=cv2.INTER_AREA)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(self.device)
            with torch.no_grad():
                feats = self.vgg(x)
            for k, v in feats.items():
                grams.setdefault(k, [torch.zeros_like(gram(v)[0])]).append(gram(v)[0])
        return {k: torch.stack(v) for k, v in grams.items()}

    def build_loader(self, data_paths: list[str]):
        """Load the data into memory and make the endless loader from the current step.

        Args:
            data_paths: photo folders and clips.

        Returns:
            (dataset, iterator over batches).
        """
        cfg = self.config
        # OpenCV's worker threads do not survive fork(): a DataLoader worker forked after
        # OpenCV started its pool hangs on its first resize. Keep it single-threaded here.
        cv2.setNumThreads(1)
        t0 = time.time()
        photos, clips = load_sources(data_paths, cfg.crop, cfg.max_photo_side, cfg.max_video_frames)
        log.info("data: %d photos, %d clips (%d frames) loaded in %.0f s", len(photos), len(clips),
                 sum(len(c) for c in clips), time.time() - t0)
        options = DataOptions(cfg.crop, cfg.video_fraction, cfg.hint_probability, len(cfg.model.style_names), cfg.seed,
                              cfg.style_fraction)
        dataset = PairDataset(photos, clips, options)
        loader = make_loader(dataset, cfg.batch_size, cfg.workers, self.step)
        if cfg.workers > 0:
            loader.worker_init_fn = _worker_init
        return dataset, iter(loader)

    # ----- checkpoints ------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly: models, optimizers, step, RNG, config."""
        return {
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "config": to_dict(self.config),
            "vgg": self.vgg.source,
            "data": list(self.data_paths),
        }

    def load_state(self, payload: dict[str, Any]) -> None:
        """Restore a checkpoint written by ``state``."""
        self.generator.load_state_dict(payload["generator"])
        self.discriminator.load_state_dict(payload["discriminator"])
        self.ema.load_state_dict(payload["ema"])
        self.opt_g.load_state_dict(payload["opt_g"])
        self.opt_d.load_state_dict(payload["opt_d"])
        self.scaler.load_state_dict(payload["scaler"])
        set_rng_state(payload["rng"])
        self.step = int(payload["step"])
        self.data_paths = list(payload.get("data", []))

    @classmethod
    def resume(cls, run_dir: Path, quiet: bool = False) -> "Trainer":
        """Reopen a run folder at its last checkpoint.

        Args:
            run_dir: the folder of the run to continue.
            quiet: plain logs.

        Returns:
            A trainer positioned at the checkpoint's step.
        """
        payload = load_checkpoint(run_dir)
        config = from_dict(TrainConfig, payload["config"])
        trainer = cls(config, run_dir, quiet=quiet, initialise=False)
        trainer.load_state(payload)
        log.info("resumed %s at step %d", run_dir, trainer.step)
        return trainer

    def save(self) -> Path:
        """Write the checkpoint now (atomically)."""
        return save_checkpoint(self.run_dir, self.state())

    # ----- the loop ---------------------------------------------------------------------
    def phase(self, step: int) -> str:
        """Which phase a step belongs to: colorize first, then style."""
        return "colorize" if step < self.config.steps_colorize or not self.config.style_images else "style"

    def _check_finite(self, terms: dict[str, torch.Tensor], which: str) -> None:
        for name, value in terms.items():
            value = float(value.detach())  # detached: no "tensor with requires_grad" warning
            if not math.isfinite(value):
                ckpt = self.run_dir / "checkpoint.pt"
                where = f"last good checkpoint kept at {ckpt}" if ckpt.exists() else "no checkpoint was written yet"
                raise TrainingError(
                    f"{which} loss term '{name}' became {value} at step {self.step}; stopped ({where}); "
                    "lower the learning rate or the loss weights and resume"
                )

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One D update (colorize phase) and one G update, then the EMA.

        Args:
            batch: a batch from the loader (on any device).

        Returns:
            Loss terms as floats.
        """
        cfg = self.config
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        phase = self.phase(self.step)
        b = batch["rgb"].shape[0]
        z = torch.randn(b, cfg.model.z_dim, device=self.device).repeat(2, 1)  # same noise for both frames
        adversarial = phase == "colorize" and cfg.loss.lambda_adv > 0
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            gen = self.objective.generate(self.generator, batch, phase, z)
        logs: dict[str, float] = {}
        if adversarial:
            self.discriminator.requires_grad_(True)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                d_terms = self.objective.discriminator_terms(gen, self.discriminator)
            self._check_finite(d_terms, "discriminator")
            self.opt_d.zero_grad(set_to_none=True)
            self.scaler.scale(d_terms["total"]).backward()
            self.scaler.step(self.opt_d)
            logs.update({k if k.startswith("d_") else "d_total": float(v.detach()) for k, v in d_terms.items()})
        self.discriminator.requires_grad_(False)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            g_terms = self.objective.generator_terms(gen, batch, self.discriminator if adversarial else None, phase)
        self._check_finite(g_terms, "generator")
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(g_terms["total"]).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()
        self._update_ema()
        logs.update({k: float(v.detach()) for k, v in g_terms.items()})
        return logs

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1.0 + self.step) / (10.0 + self.step))
        for p_ema, p in zip(self.ema.parameters(), self.generator.parameters()):
            p_ema.lerp_(p, 1.0 - decay)
        for b_ema, b in zip(self.ema.buffers(), self.generator.buffers()):
            b_ema.copy_(b)

    @torch.no_grad()
    def write_samples(self, dataset: PairDataset) -> Path:
        """Save a grid of grey input / EMA output / truth for fixed samples."""
        rows = []
        for i in range(SAMPLE_COUNT):
            item = dataset[SAMPLE_INDEX_BASE + i]
            truth = item["rgb"][0:1].to(self.device)
            luma = rgb_to_luma(truth)
            style = torch.tensor([i % len(self.config.model.style_names)], device=self.device)
            out = self.ema(luma, style=style if self.config.style_images else None, heads=("chroma", "rgb"))
            colour = out["rgb"] if int(style) > 0 else ycbcr_to_rgb(torch.cat((luma, out["chroma"]), 1))
            row = torch.cat((luma.expand(-1, 3, -1, -1), colour.clamp(0, 1), truth), dim=3)
            rows.append(row[0])
        grid = (torch.cat(rows, dim=1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8)
        path = self.run_dir / "samples" / f"step_{self.step:06d}.png"
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), grid[..., ::-1])
        return path

    def provenance(self, data_paths: list[str]) -> dict[str, Any]:
        """What produced the model: data, steps, losses, VGG weights."""
        return {
            "data": [str(p) for p in data_paths],
            "steps": self.step,
            "steps_colorize": min(self.step, self.config.steps_colorize),
            "crop": self.config.crop,
            "batch_size": self.config.batch_size,
            "losses": to_dict(self.config.loss),
            "vgg_weights": self.vgg.source,
            "style_images": list(self.config.style_images),
            "style_fraction": self.config.style_fraction,
            "init_from": self.config.init_from,
            "run": self.run_dir.name,
        }

    def train(self, data_paths: list[str], stop_at: int | None = None) -> Path:
        """Run until ``stop_at`` (or the config's total), checkpointing on the way.

        Args:
            data_paths: photo folders and clips (the config's ``data`` plus ``--data``).
            stop_at: step to stop at, before the config's total (an interruption) or after it
                (more training in the last phase).

        Returns:
            Path stem of the exported EMA generator (``run_dir/model``).
        """
        cfg = self.config
        self.data_paths = [str(p) for p in data_paths]
        # stop_at may pass the config's total: a finished run then trains on in its last phase
        # (a run can span several sittings).
        end = self.total_steps if stop_at is None else stop_at
        dataset, batches = self.build_loader(data_paths)
        bar = tqdm(total=end, initial=self.step, disable=self.quiet, desc=self.run_dir.name, dynamic_ncols=True)
        try:
            while self.step < end:
                logs = self.train_step(next(batches))
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    text = " ".join(f"{k} {v:.4f}" for k, v in logs.items())
                    log.info("step %d phase %s %s", self.step, self.phase(self.step - 1), text)
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("l1", "flicker", "adversarial", "total")})
                if self.step % cfg.sample_every == 0 or self.step == end:
                    self.write_samples(dataset)
                if self.step % cfg.checkpoint_every == 0 or self.step == end:
                    self.save()
        finally:
            bar.close()
        stem = self.run_dir / "model"
        save_generator(self.ema, stem, self.provenance(data_paths))
        log.info("saved %s.safetensors at step %d", stem, self.step)
        return stem


def start_run(config: TrainConfig, runs_root: Path, quiet: bool = False) -> Trainer:
    """Create the next numbered run folder and a trainer for it.

    Args:
        config: the resolved config.
        runs_root: folder holding runs (``runs/``).
        quiet: plain logs.

    Returns:
        A trainer at step 0.
    """
    return Trainer(config, next_run_dir(Path(runs_root), config.name), quiet=quiet)

