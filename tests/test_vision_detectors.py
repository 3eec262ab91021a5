"""The mediapipe wrappers on real photos (the small fixtures in tests/data)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tryon.vision import detectors
from tryon.vision.detectors import PoseLandmark
from tryon.vision.io import image_to_array, load_image

DATA = Path(__file__).parent / "data"
ON_MODEL = DATA / "fashion" / "images" / "10057.jpg"
HOODIE = DATA / "fashion" / "images" / "10643.jpg"  # A flat hoodie: the pose model sees a person in it.
LEGS = DATA / "fashion" / "images" / "11280.jpg"  # Jeans worn, photographed from the waist down.
CELEBA = DATA / "faces" / "celeba" / "000001.jpg"


def test_importing_loads_no_model() -> None:
    code = (
        "import sys, tryon.vision, tryon.vision.io, tryon.vision.detectors, tryon.vision.warp, tryon.face.align; "
        "import datasets, datasets.cli, datasets.fashion, datasets.faces; "
        "assert 'mediapipe' not in sys.modules, 'mediapipe imported'; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_pose_on_a_model_photo() -> None:
    pose = detectors.detect_pose(load_image(ON_MODEL))
    assert pose is not None
    assert pose.xy.shape == (33, 2) and pose.visibility.shape == (33,)
    assert pose.min_visibility([PoseLandmark.LEFT_SHOULDER, PoseLandmark.RIGHT_SHOULDER]) > 0.9
    # Upright and facing the camera: nose above shoulders above hips; the person's left on the right.
    assert pose.point(PoseLandmark.NOSE)[1] < pose.shoulder_mid[1] < pose.hip_mid[1]
    assert pose.point(PoseLandmark.LEFT_SHOULDER)[0] > pose.point(PoseLandmark.RIGHT_SHOULDER)[0]
    assert 80 < pose.shoulder_mid[0] < 144  # Centred in the 224 px photo.


def test_detectors_are_deterministic_and_reused() -> None:
    a = image_to_array(load_image(ON_MODEL))
    p1, p2 = detectors.detect_pose(a), detectors.detect_pose(a.copy())
    assert p1 is not None and p2 is not None and np.array_equal(p1.xy, p2.xy)
    n = len(detectors._detectors)
    detectors.detect_pose(a)
    assert len(detectors._detectors) == n  # The same graph, not a new one per call.


def test_faces_and_hands_tell_a_person_from_a_garment() -> None:
    faces = detectors.detect_faces(load_image(ON_MODEL))
    assert faces and faces[0].score > 0.8
    assert faces[0].keypoints.shape == (6, 2)
    hoodie = load_image(HOODIE)
    assert detectors.detect_pose(hoodie) is not None  # Why pose alone cannot tell the view ...
    assert not [f for f in detectors.detect_faces(hoodie) if f.score >= 0.8]  # ... but faces can,
    assert not [h for h in detectors.detect_hands(hoodie) if h.score >= 0.8]
    legs = detectors.detect_hands(load_image(LEGS))  # and hands catch the headless shots.
    assert legs and max(h.score for h in legs) >= 0.8 and legs[0].xy.shape == (21, 2)


def test_large_photos_are_reduced_for_detection_with_boxes_in_their_own_pixels() -> None:
    photo = load_image(ON_MODEL)
    small = detectors.detect_faces(photo)
    big = detectors.detect_faces(photo.resize((224 * 6, 224 * 6), Image.Resampling.BICUBIC))  # Over 1024 px.
    assert small and big
    assert np.abs(big[0].box / 6 - small[0].box).max() < 3.0, (big[0].box / 6, small[0].box)


def test_face_mesh_and_segmentation() -> None:
    face = load_image(CELEBA)
    meshes = detectors.detect_face_mesh(face, refine=True)
    assert len(meshes) == 1 and meshes[0].landmarks.shape == (478, 3)
    mask = detectors.segment_person(load_image(ON_MODEL))
    assert mask.shape == (224, 224) and mask.dtype == np.float32
    assert mask[112, 112] > 0.5 and mask[5, 5] < 0.5  # Torso vs the white corner.


def test_bad_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="RGB uint8"):
        detectors.detect_pose(np.zeros((10, 10), dtype=np.uint8))
    with pytest.raises(ValueError, match="RGB uint8"):
        detectors.detect_faces(np.zeros((10, 10, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="model"):
        detectors.detect_faces(np.zeros((10, 10, 3), dtype=np.uint8), model="huge")


def test_mediapipe_set_up_noise_is_filtered_and_other_stderr_kept() -> None:
    code = (
        "import os, sys\n"
        "from tryon.vision import detectors\n"
        "from tryon.vision.io import load_image\n"
        f"img = load_image({str(ON_MODEL)!r})\n"
        "detectors.detect_pose(img); detectors.detect_faces(img); detectors.detect_face_mesh(img)\n"
        "with detectors.filtered_native_stderr():\n"
        "    os.write(2, b'W0000 00:00:1.0 1 x.cc:1] Feedback manager requires a model with a single signature\\n')\n"
        "    os.write(2, b'a real native error\\n')\n"
        "    print('a python warning', file=sys.stderr)\n"
        "print('done')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout == "done\n"
    lines = result.stderr.splitlines()
    assert "a real native error" in lines and "a python warning" in lines
    noise = [line for line in lines if "XNNPACK" in line or "W0000" in line or "absl::InitializeLog" in line]
    assert noise == [], result.stderr



def test_one_filter_window_spans_construction_and_first_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # mediapipe opens its calculators on scheduler threads after the graph object is built, so its set-up
    # messages may come at any moment until the first run ends (CI once caught one in between).
    import contextlib
    from collections.abc import Iterator

    windows: list[int] = []
    inner = detectors.filtered_native_stderr

    @contextlib.contextmanager
    def counted() -> Iterator[None]:
        with inner():
            windows.append(len(windows) + 1)
            try:
                yield
            finally:
                windows.append(-windows[-1])

    monkeypatch.setattr(detectors, "filtered_native_stderr", counted)
    seen: list[tuple[str, int]] = []

    class Graph:  # Stands in for a mediapipe solution: records the filter window it runs in.
        def __init__(self) -> None:
            seen.append(("built", windows[-1] if windows else 0))

        def process(self, image: np.ndarray) -> str:
            seen.append(("run", windows[-1] if windows else 0))
            return "landmarks"

    key = ("stand-in graph", id(Graph))
    try:
        for _ in range(2):
            assert detectors._process(key, Graph, np.zeros((4, 4, 3), np.uint8)) == "landmarks"
    finally:
        detectors._detectors.pop(key, None)
    assert seen == [("built", 1), ("run", 1), ("run", -1)]  # Later runs are not filtered.
