"""tools/fetch_photos.py's offline pieces: manifest, filters, dedupe, held-out refusal."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fetch_photos.py"
_spec = importlib.util.spec_from_file_location("fetch_photos", TOOL)
fetch_photos = importlib.util.module_from_spec(_spec)
# dataclasses look their module up in sys.modules while the module runs.
sys.modules["fetch_photos"] = fetch_photos
_spec.loader.exec_module(fetch_photos)


def _colour_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth colour picture with structure (so its mean hash is not trivial)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def test_manifest_writer_sorts_rows_and_keeps_columns(tmp_path):
    rows = [{"out_path": name, "source": "deb:x=1", "path_in_package": f"usr/{name}",
             "license": "CC0-1.0", "copyright": "someone", "sha256": "ab" * 32,
             "width": 10, "height": 20}
            for name in ("b.jpg", "a.jpg")]
    manifest = tmp_path / "sub" / "photos.csv"
    fetch_photos.write_manifest(rows, manifest)
    with open(manifest, newline="") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == fetch_photos.MANIFEST_COLUMNS
    assert [r["out_path"] for r in read] == ["a.jpg", "b.jpg"]
    assert read[0]["license"] == "CC0-1.0" and read[0]["width"] == "10"


def test_grey_and_small_images_are_refused():
    colour = _colour_scene(300, 400)
    assert fetch_photos.grey_or_small(colour) == ""
    grey = cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert fetch_photos.grey_or_small(grey) == "grey"
    assert "short side 200" in fetch_photos.grey_or_small(_colour_scene(200, 900))


def test_long_side_is_fitted_and_never_enlarged():
    assert fetch_photos.fit_long_side(np.zeros((1500, 3000, 3), np.uint8)).shape == (512, 1024, 3)
    assert fetch_photos.fit_long_side(np.zeros((300, 400, 3), np.uint8)).shape == (300, 400, 3)


def test_fingerprint_finds_resized_copies_but_not_other_pictures():
    picture = _colour_scene(600, 800, seed=1)
    known = {"eval/one.png": fetch_photos.fingerprint(picture)}
    resized = cv2.resize(picture, (400, 300), interpolation=cv2.INTER_AREA)
    _, jpeg = cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, 70])
    copy = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    assert fetch_photos.find_duplicate(fetch_photos.fingerprint(copy), known) == "eval/one.png"
    other = _colour_scene(600, 800, seed=2)
    assert fetch_photos.find_duplicate(fetch_photos.fingerprint(other), known) is None
    assert fetch_photos.hamming(0b1011, 0b0001) == 2


def test_same_mean_hash_but_different_pictures_are_kept_apart():
    # Bright top, dark bottom: the 8x8 mean hash is the same, the pictures are not.
    sky = np.zeros((480, 640), np.uint8)
    sky[:240] = 220
    ground_a, ground_b = sky.copy(), sky.copy()
    ground_a[300:, :320] = 60
    ground_b[240:, 320:] = 80
    ground_b[400:, :100] = 40
    a, b = fetch_photos.fingerprint(ground_a), fetch_photos.fingerprint(ground_b)
    assert fetch_photos.hamming(a.hash, b.hash) <= fetch_photos.HASH_MAX_DISTANCE
    assert not fetch_photos.same_picture(a, b)
    assert fetch_photos.same_picture(a, a)


def test_save_photo_writes_a_jpeg_that_the_manifest_describes(tmp_path):
    row = fetch_photos.save_photo(_colour_scene(1200, 1600), tmp_path, "x.jpg")
    assert (row["width"], row["height"]) == (1024, 768)
    assert cv2.imread(str(tmp_path / "x.jpg")).shape == (768, 1024, 3)
    assert len(row["sha256"]) == 64


@pytest.mark.parametrize("name", ["mate-backgrounds", "scikit-image", "scikit_image", "skimage",
                                  "scikit-learn", "sklearn", "Scikit-Learn"])
def test_held_out_sources_are_refused(name, tmp_path, capsys):
    with pytest.raises(fetch_photos.HeldOutError):
        fetch_photos.select_sources([name])
    assert fetch_photos.main(["--out", str(tmp_path / "out"), "--only", name,
                              "--manifest", str(tmp_path / "m.csv")]) == 2
    assert "held out for evaluation" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_reviewed_list_has_no_held_out_source_and_unknown_names_are_refused():
    names = {fetch_photos.normalize_name(s.name) for s in fetch_photos.SOURCES}
    assert not names & set(fetch_photos.HELD_OUT)
    assert len(fetch_photos.select_sources(None)) == len(fetch_photos.SOURCES)
    with pytest.raises(ValueError, match="not a reviewed photo source"):
        fetch_photos.select_sources(["gnome-backgrounds"])


def test_out_inside_the_repository_is_refused(capsys):
    out = fetch_photos.REPO_ROOT / "extra_photos_test"
    assert fetch_photos.main(["--out", str(out), "--only", "imgaug"]) == 2
    assert "inside the repository" in capsys.readouterr().err
    assert not out.exists()


def test_dep5_license_per_file_and_wheel_license():
    text = ("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
            "Files: *\nCopyright: 2014 KDE\nLicense: GPL-2+\n\n"
            "Files: 16.04/sunset_by_A.jpg\nCopyright: A, 2018\nLicense: CC-BY-4.0\n\n"
            "Files: debian/*\nCopyright: 2018, D\nLicense: Expat\n\n"
            "License: CC-BY-4.0\n Attribution 4.0 International\n")
    stanzas = fetch_photos.parse_dep5(text)
    assert fetch_photos.dep5_license(stanzas, "usr/share/backgrounds/sunset_by_A.jpg") == \
        ("CC-BY-4.0", "A, 2018")
    assert fetch_photos.dep5_license(stanzas, "usr/share/backgrounds/other.jpg") == \
        ("GPL-2+", "2014 KDE")
    metadata = ("Metadata-Version: 2.1\nName: x\nLicense: MIT\n"
                "Classifier: License :: OSI Approved :: MIT License\n\nbody\n")
    assert fetch_photos.wheel_license(metadata) == "MIT"
    long_text = ("Metadata-Version: 2.1\nName: y\nLicense: Copyright (c) 2001-2002 Enthought, "
                 "Inc. 2003-2022, SciPy Developers.\n        All rights reserved.\n"
                 "Classifier: License :: OSI Approved :: BSD License\n\n")
    assert fetch_photos.wheel_license(long_text) == "BSD License"
