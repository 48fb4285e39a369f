"""The frame-level trainer: two phases (colorize, then style), EMA, atomic checkpoints.

A run lives in a numbered folder (``runs/0003-base``) holding the resolved ``config.toml``,
``log.txt``, sample grids (grey input / output / truth) and ``checkpoint.pt``. ``--resume``
restores the models, optimizers, step and RNG state, and the data stream depends only on the
step (see ``data.py``), so a resumed run gives the same weights as an uninterrupted one.
The trainer only orders the updates; what each update optimises is ``losses.Objective``'s job.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tqdm import tqdm

from vidcolor.color import rgb_to_luma, ycbcr_to_rgb
from vidcolor.config import ConfigError, TrainConfig, dump_toml, from_dict, load, to_dict
from vidcolor.devices import pick_device
from vidcolor.errors import InputError, Interrupted, OutputError, TrainingError, UsageError, VidcolorError
from vidcolor.io.atomic import WRITE_FAILURE_ADVICE, check_output_path, write_failure
from vidcolor.losses.objective import Objective
from vidcolor.losses.perceptual import gram
from vidcolor.models.discriminator import build_discriminator
from vidcolor.models.efficientnet import trunk_state
from vidcolor.models.features import lite0_imagenet_state, load_loss_features
from vidcolor.models.generator import build_generator
from vidcolor.models.weights import load_generator, model_files, model_stem, read_model_card, save_generator
from vidcolor.training.checkpoint import CHECKPOINT_NAME, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from vidcolor.training.data import DataOptions, PairDataset, is_grey, load_photo, load_sources, make_loader
from vidcolor.wording import count_of

log = logging.getLogger("vidcolor.train")  # the run's log.txt (and stderr with --quiet)
console = logging.getLogger("vidcolor")  # the terminal, above a progress bar
SAMPLE_INDEX_BASE = 10**15  # dataset items used for sample grids, far from training items
SAMPLE_COUNT = 6
KEPT_STYLE_INDEX_BASE = 2 * 10**15  # dataset items whose styled outputs define a kept style's look
KEPT_STYLE_SAMPLES = 16


def absolute_paths(paths) -> tuple[str, ...]:
    """Paths as absolute strings, so a run's record means the same from any folder.

    Args:
        paths: files or folders.

    Returns:
        Absolute path strings, in order.
    """
    return tuple(os.path.abspath(os.path.expanduser(str(p))) for p in paths)


def style_names_for(config: TrainConfig) -> tuple[str, ...]:
    """The styles a new run's model carries: the init model's (kept by name, natural first)
    plus one per ``--style-image`` not already among them.

    A painting named like a style the init model has (``starry_night.jpg``) trains that style
    with this painting; ``natural`` and two paintings with one name are refused, since such a
    style could never be selected.

    Args:
        config: the run's config (``style_images``, ``init_from``).

    Returns:
        Style names; index 0 is natural colour.

    Raises:
        UsageError: a reserved or repeated style name.
        InputError: a painting that is missing or not an image.
    """
    seen: dict[str, str] = {}
    for path in config.style_images:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{path}: style image not found")
        if not cv2.haveImageReader(str(p)):  # reads the header only, and prints nothing
            raise InputError(f"{path}: not an image that can be read as a style painting")
        name = p.stem
        if name == "natural":
            raise UsageError(f"{path}: a style cannot be named 'natural' (that is style 0, natural colour); "
                             "rename the file (the style is named after it)")
        if name in seen and absolute_paths([seen[name]]) == absolute_paths([path]):
            raise UsageError(f"{path} is given twice as --style-image; give each painting once")
        if name in seen:
            raise UsageError(f"{seen[name]} and {path} would both be the style '{name}'; "
                             "rename one of the files (a style is named after its file)")
        seen[name] = path
    base: tuple[str, ...] = ("natural",)
    if config.init_from:
        base = tuple(read_model_card(config.init_from).get("config", {}).get("style_names", base))
    return base + tuple(name for name in seen if name not in base)


def check_init_model(config: TrainConfig) -> None:
    """Refuse an ``init_from`` model whose architecture differs from the config's model.

    Copying only the tensors whose shapes happen to match would start from a nearly random
    generator while the run looked initialised.

    Args:
        config: the run's config.

    Raises:
        ConfigError: the architectures differ.
        ModelError: the model is missing or unreadable.
    """
    if not config.init_from:
        return
    theirs = read_model_card(config.init_from).get("config", {})
    ours = to_dict(config.model)
    # A longer style branch is allowed: its new blocks start as the identity.
    differ = [f"{k} {theirs.get(k)!r} there, {v!r} here" for k, v in ours.items()
              if k not in ("style_names", "style_branch") and theirs.get(k, v) != v]
    if theirs.get("style_branch", 0) > ours["style_branch"]:
        differ.append(f"style_branch {theirs['style_branch']!r} there, {ours['style_branch']!r} here")
    if differ:
        raise ConfigError(f"init_from {config.init_from} is another architecture than this config's model "
                          f"({'; '.join(differ)}); set model_config to the one it was trained with")


def export_files(export: str | os.PathLike, overwrite: bool) -> Path:
    """Check ``--export`` before training: the folder exists and is writable, and neither
    file exists unless ``overwrite``.

    Args:
        export: ``NAME``, ``NAME.safetensors`` or ``NAME.json`` (dots in NAME are kept).
        overwrite: allow replacing an existing model.

    Returns:
        The model's stem.

    Raises:
        OutputError: one line saying what to do.
    """
    if Path(export).is_dir():  # NAME would become NAME.safetensors beside the folder
        raise UsageError(f"--export {export} is a folder; give a model name in it, e.g. "
                         f"{Path(export) / 'my_model'}")
    stem = model_stem(export)
    for path in model_files(stem):
        check_output_path(path, overwrite, what="--export")
    # Permissions alone do not tell (root, /proc, a read-only mount): try writing there.
    folder = stem.parent if str(stem.parent) else Path(".")
    try:
        fd, probe = tempfile.mkstemp(prefix=".vidcolor-export-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        if exc.errno in WRITE_FAILURE_ADVICE:
            raise write_failure(model_files(stem)[0], exc) from None
        raise OutputError(f"cannot write {model_files(stem)[0]}: files cannot be created in {folder} "
                          f"({exc.strerror or exc})") from None
    return stem


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


# PyTorch's words when a data-loading worker process dies of a signal. SIGTERM or Ctrl-C sent
# to the whole process group (a job scheduler, a terminal) can reach a worker before the main
# process's own handler runs, and then this error comes first.
_WORKER_SIGNALLED = re.compile(r"DataLoader worker \(pid(?:\(s\))? [^)]*\) (?:is|exited) killed by signal: (Terminated|Interrupt)")


def _worker_signal_as_interruption(exc: BaseException) -> BaseException:
    """A data-loading worker killed by SIGTERM or SIGINT as the interruption it is (exit 143
    or 130), not an internal error; anything else unchanged."""
    match = _WORKER_SIGNALLED.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if match is None:
        return exc
    if match[1] == "Terminated":
        return Interrupted("terminated (SIGTERM)", signal_exit_code=143)
    return KeyboardInterrupt()


def _keep_natural_code(grad: torch.Tensor) -> torch.Tensor:
    """The style table's gradient without its row 0 (natural colour's code)."""
    grad = grad.clone()
    grad[0] = 0.0
    return grad


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

        if initialise:  # a resumed run keeps the styles its checkpoint was made with
            style_names = style_names_for(config)
            if config.model.style_names != style_names:
                config = from_dict(TrainConfig, {**to_dict(config), "model": {**to_dict(config.model), "style_names": list(style_names)}})
        self.config = config
        # Styles without a painting in this run (kept from init_from) are trained towards
        # their own look: the Gram statistics of the init model's output in that style.
        painted = {Path(p).stem for p in config.style_images}
        self.kept_styles = tuple(n for n in config.model.style_names[1:] if n not in painted)
        torch.manual_seed(config.seed)
        self.generator = build_generator(config.model).to(self.device)
        if config.init_from and initialise:
            self._init_generator(config.init_from)
        elif initialise and config.model.encoder == "efficientnet_lite0":
            state, path = lite0_imagenet_state()
            self.generator.encoder.load_state_dict(trunk_state(state))
            log.info("generator encoder initialised from ImageNet EfficientNet-Lite0 (%s)", path)
        self.discriminator = build_discriminator(config.discriminator).to(self.device)
        self.ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        betas = (config.beta1, config.beta2)
        if config.trained_parameters == "style":
            # Everything natural colour depends on stays frozen (and costs no backward pass).
            self.generator.requires_grad_(False)
            for p in self.generator.style_parameters():
                p.requires_grad_(True)
            # Natural colour's code (row 0) feeds the decoder every frame: it must not move.
            self.generator.style_embedding.weight.register_hook(_keep_natural_code)
        # A pretrained trunk is fine-tuned more gently than the layers that start from scratch.
        trained = [(n, p) for n, p in self.generator.named_parameters() if p.requires_grad]
        encoder = [p for n, p in trained if n.startswith("encoder.")]
        rest = [p for n, p in trained if not n.startswith("encoder.")]
        groups = [{"params": rest}] + ([{"params": encoder, "lr": config.lr_g * config.encoder_lr_scale}] if encoder else [])
        self.opt_g = torch.optim.Adam(groups, lr=config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr_d, betas=betas)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.vgg = load_loss_features(config.loss).to(self.device)
        if config.loss.features == "vgg16":
            log.info("VGG16 features: %s%s", self.vgg.source,
                     "" if self.vgg.source.startswith("imagenet") else " (ImageNet weights not in the torch cache)")
        else:
            log.info("EfficientNet-Lite0 features: %s", self.vgg.source)
        self.objective = Objective(config.loss, self.vgg, self._style_grams())
        self.step = 0
        self.checkpoint_step: int | None = None  # step of the checkpoint on disk
        self.owns_run_dir = False  # start_run made the folder: remove it if nothing survives
        self.data_paths: list[str] = list(config.data)  # what train() was given; a resume uses it again
        self.total_steps = config.steps_colorize + config.steps_style
        self._write_config()

    def _write_config(self) -> None:
        (self.run_dir / "config.toml").write_text(dump_toml(to_dict(self.config)), encoding="utf-8")

    def notice(self, text: str, warning: bool = False) -> None:
        """Say something in the run's log and on the terminal (once, with or without --quiet).

        Args:
            text: one line.
            warning: log it as a warning.
        """
        (log.warning if warning else log.info)(text)
        if not self.quiet:  # with --quiet, the log already goes to stderr
            (console.warning if warning else console.info)(("warning: " if warning else "") + text)

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

        The architectures match (``check_init_model``), so every tensor is copied; style codes
        are matched by name: a style the model has keeps its code, a new style starts from
        natural colour's code, so the style phase begins from the model's own natural colours.
        """
        check_init_model(self.config)
        source, _ = load_generator(name_or_path)
        theirs = source.state_dict()
        ours = self.generator.state_dict()
        table = theirs["style_embedding.weight"]
        rows = {name: i for i, name in enumerate(source.style_names)}
        for key, value in theirs.items():
            if key == "style_embedding.weight":
                ours[key] = torch.stack([table[rows.get(name, 0)] for name in self.config.model.style_names])
            else:
                ours[key] = value.clone()
        self.generator.load_state_dict(ours)
        kept = [n for n in self.config.model.style_names[1:] if n in rows]
        new = [n for n in self.config.model.style_names[1:] if n not in rows]
        fresh = len(ours) - len(theirs)  # the blocks of a longer style branch (identity at start)
        copied = f"all {len(ours)} tensors" if not fresh else f"{len(theirs)} tensors, {fresh} new in the style branch"
        self.notice(f"generator initialised from {name_or_path}: {copied}; styles kept: "
                    f"{', '.join(kept) or 'none'}; new (from natural colour): {', '.join(new) or 'none'}")

    def _style_grams(self) -> dict[str, torch.Tensor] | None:
        """Gram matrices of each style's painting at crop scale, one row per style (row 0,
        natural, is unused; rows of kept styles stay zero until ``_kept_style_grams``)."""
        names = self.config.model.style_names
        if len(names) < 2:
            return None
        side = self.config.loss.vgg_size or self.config.crop
        with torch.no_grad():
            channels = {k: v.shape[1] for k, v in self.vgg(torch.zeros(1, 3, 32, 32, device=self.device)).items()}
        grams = {k: torch.zeros(len(names), c, c, device=self.device) for k, c in channels.items()}
        paintings = {Path(p).stem: p for p in self.config.style_images}
        for index, name in enumerate(names):
            path = paintings.get(name)
            if index == 0 or path is None:
                continue
            img = load_photo(Path(path), max_side=4 * side)
            if img is None:
                raise InputError(f"{path}: style image not found or not an image")
            if is_grey(img):
                self.notice(f"{path}: the painting is grey; the style '{name}' will be black and white", warning=True)
            h, w = img.shape[:2]
            scale = 2 * side / min(h, w)
            img = cv2.resize(img, (max(round(w * scale), side), max(round(h * scale), side)), interpolation=cv2.INTER_AREA)
            x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(self.device)
            with torch.no_grad():
                feats = self.vgg(x)
            for k, v in feats.items():
                grams[k][index] = gram(v)[0]
        return grams

    @torch.no_grad()
    def _kept_style_grams(self, dataset: PairDataset) -> None:
        """Fill the Gram rows of kept styles from the init model's own output in each style on
        fixed training crops, so the style phase keeps training them towards their look
        (their paintings are not at hand). Computed at step 0 and saved in checkpoints."""
        grams = self.objective.style_grams
        crops = torch.stack([dataset[KEPT_STYLE_INDEX_BASE + i]["rgb"][0] for i in range(KEPT_STYLE_SAMPLES)]).to(self.device)
        luma = rgb_to_luma(crops)
        size = self.config.loss.vgg_size
        for name in self.kept_styles:
            index = self.config.model.style_names.index(name)
            style = torch.full((len(crops),), index, dtype=torch.long, device=self.device)
            rgb = self.ema(luma, style=style, heads=("rgb",))["rgb"].clamp(0, 1)
            if size and rgb.shape[-1] != size:  # as the objective shows outputs to VGG
                rgb = torch.nn.functional.interpolate(rgb, size=(size, size), mode="bilinear", align_corners=False,
                                                      antialias=True)
            for k, v in self.vgg(rgb).items():
                grams[k][index] = gram(v).mean(0)

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
        photos, clips = load_sources(data_paths, cfg.crop, cfg.max_photo_side, cfg.max_video_frames,
                                     warn=lambda text: self.notice(text, warning=True))
        log.info("data: %s, %s (%s) loaded in %.0f s", count_of(len(photos), "photo"), count_of(len(clips), "clip"),
                 count_of(sum(len(c) for c in clips), "frame"), time.time() - t0)
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
            # Kept styles' targets come from the init model, which a resume may not have.
            "style_grams": dict(self.objective.style_grams or {}),
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
        self.checkpoint_step = self.step
        self.data_paths = list(self.config.data) or list(payload.get("data", []))
        if payload.get("style_grams") and self.objective.style_grams is not None:
            self.objective.style_grams = {k: v.to(self.device) for k, v in payload["style_grams"].items()}

    @classmethod
    def resume(cls, run_dir: Path, quiet: bool = False, data=(), style_images=(), config_path=None) -> "Trainer":
        """Reopen a run folder at its last checkpoint.

        A resumed run trains on its own data with its own config and paintings; ``data``,
        ``style_images`` and ``config_path`` may repeat them (a copied command line) but not
        change them: a run whose data changed half way would misstate its provenance.

        Args:
            run_dir: the folder of the run to continue.
            quiet: plain logs.
            data: ``--data`` given again (empty: the run's own).
            style_images: ``--style-image`` given again (empty: the run's own).
            config_path: ``--config`` given again (None: the run's own).

        Returns:
            A trainer positioned at the checkpoint's step.

        Raises:
            UsageError: ``data``, ``style_images`` or ``config_path`` differ from the run's.
        """
        payload = load_checkpoint(run_dir)
        config = from_dict(TrainConfig, payload["config"])
        _check_same_as_run(run_dir, config, list(config.data) or list(payload.get("data", [])), data, style_images,
                           config_path)
        trainer = cls(config, run_dir, quiet=quiet, initialise=False)
        trainer.load_state(payload)
        log.info("resumed %s at step %d", run_dir, trainer.step)
        return trainer

    def save(self) -> Path:
        """Write the checkpoint now (atomically)."""
        path = save_checkpoint(self.run_dir, self.state())
        self.checkpoint_step = self.step
        return path

    # ----- the loop ---------------------------------------------------------------------
    def phase(self, step: int) -> str:
        """Which phase a step belongs to: colorize first, then style."""
        return "colorize" if step < self.config.steps_colorize or len(self.config.model.style_names) < 2 else "style"

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
            out = self.ema(luma, style=style if len(self.config.model.style_names) > 1 else None, heads=("chroma", "rgb"))
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
            "kept_styles": list(self.kept_styles),  # trained towards the init model's own look
            "style_fraction": self.config.style_fraction,
            "init_from": self.config.init_from,
            "run": self.run_dir.name,
        }

    def train(self, data_paths: list[str] | None = None, stop_at: int | None = None) -> Path:
        """Run until ``stop_at`` (or the config's total), checkpointing on the way.

        Args:
            data_paths: photo folders and clips (None: the config's ``data``, or what the
                run trained on before a resume); recorded in the run's config.
            stop_at: step to stop at, before the config's total (an interruption) or after it
                (more training in the last phase); it must lie after the current step.

        Returns:
            Path stem of the exported EMA generator (``run_dir/model``).

        Raises:
            UsageError: ``stop_at`` is not after the current step.
            Interrupted: Ctrl-C or SIGTERM, saying which checkpoint was kept and how to resume.
        """
        data_paths = list(data_paths) if data_paths is not None else list(self.data_paths)
        self.data_paths = [str(p) for p in data_paths]
        if tuple(self.data_paths) != self.config.data:  # config.toml says what the run trains on
            self.config = dataclasses.replace(self.config, data=tuple(self.data_paths))
            self._write_config()
        # stop_at may pass the config's total: a finished run then trains on in its last phase
        # (a run can span several sittings).
        end = self.total_steps if stop_at is None else stop_at
        try:
            if stop_at is not None and stop_at <= self.step:
                what = "must be a positive step" if self.step == 0 else f"is not after the run's step {self.step}"
                raise UsageError(f"--until {stop_at} {what}; nothing to train")
            dataset, batches = self.build_loader(self.data_paths)
            if self.kept_styles and self.step == 0:
                self._kept_style_grams(dataset)
            self._loop(dataset, batches, end)
        except BaseException as exc:
            stopped = self._stopped(exc)
            if stopped is exc:
                raise
            raise stopped from None
        stem = self.run_dir / "model"
        save_generator(self.ema, stem, self.provenance(self.data_paths))
        log.info("saved %s.safetensors at step %d", stem, self.step)
        return stem

    def _loop(self, dataset: PairDataset, batches, end: int) -> None:
        cfg = self.config
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

    def _stopped(self, exc: BaseException) -> BaseException:
        """Record why the run stopped in its log; remove a new run's folder when no checkpoint
        survives (it could never be resumed); say how to continue after Ctrl-C or SIGTERM.

        Args:
            exc: what stopped the run.

        Returns:
            The exception to raise (an ``Interrupted`` for Ctrl-C).
        """
        exc = _worker_signal_as_interruption(exc)
        interrupted = isinstance(exc, (KeyboardInterrupt, Interrupted))
        kept = self.checkpoint_step is not None and (self.run_dir / CHECKPOINT_NAME).exists()
        if interrupted:
            how = str(exc) if isinstance(exc, Interrupted) else "interrupted"
            code = exc.exit_code if isinstance(exc, Interrupted) else 130
            if kept:
                where = (f"the checkpoint of step {self.checkpoint_step} is kept; continue with "
                         f"'vidcolor train --resume {self.run_dir}'")
            else:
                where = f"no checkpoint yet (one every {self.config.checkpoint_every} steps)"
            exc = Interrupted(f"{how} at step {self.step}; {where}", signal_exit_code=code)
        if not kept and self.owns_run_dir:
            discard_run_dir(self.run_dir)
            if isinstance(exc, VidcolorError) and len(exc.args) == 1:
                exc.args = (f"{exc.args[0]}; the run folder {self.run_dir} was removed",)
        else:  # into log.txt only: the terminal gets the error line itself
            record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "stopped at step %d: %s",
                                    (self.step, str(exc) or exc.__class__.__name__), None)
            for handler in log.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.handle(record)
        return exc


def discard_run_dir(run_dir: Path) -> None:
    """Remove a new run's folder that holds no checkpoint (closing its log first).

    Args:
        run_dir: the folder ``start_run`` made.
    """
    for handler in list(log.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            log.removeHandler(handler)
    shutil.rmtree(run_dir, ignore_errors=True)


def _check_same_as_run(run_dir: Path, config: TrainConfig, run_data: list[str], data, style_images, config_path) -> None:
    """Refuse ``--data``, ``--style-image`` or ``--config`` that differ from what a run was
    started with (see ``Trainer.resume``)."""
    def same(a, b) -> bool:
        return sorted(absolute_paths(a)) == sorted(absolute_paths(b))

    start_new = (f"to train on something else, start a new run from this one "
                 f"(--config ... --set init_from={run_dir / 'model.json'})")
    if data and not same(data, run_data):
        raise UsageError(f"--resume trains on the run's own data ({', '.join(run_data) or 'none recorded'}), "
                         f"not {', '.join(map(str, data))}; {start_new}")
    if style_images and list(absolute_paths(style_images)) != list(absolute_paths(config.style_images)):
        raise UsageError(f"--resume keeps the run's paintings ({', '.join(config.style_images) or 'none'}); "
                         f"--style-image cannot change them; {start_new}")
    if config_path is not None:
        given = to_dict(load(config_path))
        saved = to_dict(config)
        ignored = {"data", "style_images"}  # given with --data and --style-image; checked above
        given["model"].pop("style_names"), saved["model"].pop("style_names")
        for key in saved:
            if key not in ignored and given.get(key) != saved[key]:
                raise UsageError(f"--config {config_path} differs from the run's own config ({key}: "
                                 f"{given.get(key)!r} there, {saved[key]!r} in {run_dir / 'config.toml'}); "
                                 "--resume continues with the run's config (leave out --config)")


def start_run(config: TrainConfig, runs_root: Path, quiet: bool = False) -> Trainer:
    """Create the next numbered run folder and a trainer for it.

    Args:
        config: the resolved config.
        runs_root: folder holding runs (``runs/``).
        quiet: plain logs.

    Returns:
        A trainer at step 0.
    """
    run_dir = next_run_dir(Path(runs_root), config.name)
    try:
        trainer = Trainer(config, run_dir, quiet=quiet)
    except BaseException:
        discard_run_dir(run_dir)  # a bad device, VGG path or painting: leave no empty run behind
        raise
    trainer.owns_run_dir = True
    return trainer

