"""How many faces the face alignment counts in real photos, with and without the filters of
tryon.face.align (landmark plausibility; further faces at least half the size of the largest, score >= 0.6).

Photos: every photo of ../shared/data/face_photos (one person each, but `two_people.jpg`), a seeded
sample of `--lfw` LFW news photos (one subject; background people in some), and `--catalog` catalog
photos of fashion_products (product shots with no face, models with one). For each set it prints how
many photos give 0, 1, 2+ faces before and after the filters, and lists the photos whose count changed.

    python benchmarks/bench_face_count.py [--lfw 400] [--catalog 300]

Writes benchmarks/results/bench_face_count.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def photo_sets(lfw: int, catalog: int) -> dict[str, list[Path]]:
    face_photos = sorted(p for p in (DATA / "face_photos").rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    lfw_all = sorted((DATA / "faces_lfw" / "images").glob("*/*.jpg"))
    random.Random(0).shuffle(lfw_all)
    catalog_all = sorted((DATA / "fashion_products" / "images").glob("*.jpg"))
    random.Random(1).shuffle(catalog_all)
    return {"face_photos": face_photos, "faces_lfw": lfw_all[:lfw], "fashion_products": catalog_all[:catalog]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lfw", type=int, default=400)
    parser.add_argument("--catalog", type=int, default=300)
    parser.add_argument("--out", default=str(RESULTS / "bench_face_count.json"))
    args = parser.parse_args()
    from tryon.face.align import counted_faces, meshed_detections
    from tryon.vision.io import load_image

    if not DATA.is_dir():
        print(f"{DATA} is absent: this benchmark needs the shared data", file=sys.stderr)
        return 1
    report: dict[str, object] = {}
    print(f"{'photos':18} {'n':>5}  {'before 0/1/2+':>15}  {'after 0/1/2+':>15}  changed")
    for name, paths in photo_sets(args.lfw, args.catalog).items():
        before: collections.Counter[str] = collections.Counter()
        after: collections.Counter[str] = collections.Counter()
        changed = []
        for path in paths:
            image = load_image(path.read_bytes(), name=path.name)
            meshed = meshed_detections(image)
            n0, n1 = len(counted_faces(meshed, filters=False)), len(counted_faces(meshed))
            before[str(min(n0, 2))] += 1
            after[str(min(n1, 2))] += 1
            if n0 != n1:
                changed.append({"photo": str(path.relative_to(DATA)), "before": n0, "after": n1})
        row = lambda c: f"{c['0']}/{c['1']}/{c['2']}"  # noqa: E731
        print(f"{name:18} {len(paths):5}  {row(before):>15}  {row(after):>15}  {len(changed)}")
        report[name] = {"photos": len(paths), "before": dict(before), "after": dict(after), "changed": changed}
    for name, entry in report.items():
        for c in entry["changed"]:  # type: ignore[index]
            print(f"  {name}: {c['photo']}: {c['before']} -> {c['after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
