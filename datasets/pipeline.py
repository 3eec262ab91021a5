"""The machinery every dataset tool shares: photos in, a labelled dataset zip out.

    items (one per photo) --processor (in worker processes, in order)--> outcomes
    outcomes --(main process)--> images streamed into the zip, labels, skip reasons
    at the end: label schema from the kept images, dataset.json, report.json, metadata.json

A processor is a top-level function `processor(item, options) -> Outcome` (so worker processes can
import it); it decodes the photo, runs the detectors, and returns the encoded output images or the
reason the photo was skipped. Workers are spawned processes, each with its own mediapipe detectors,
fed in chunks and read back in input order, so the zip does not depend on the number of workers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import io
import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from datasets.labels import build_schema, encode_labels
from datasets.zipwriter import DatasetZipWriter
from tryon.progress import progress_bar

log = logging.getLogger("datasets")

# Why a photo was skipped: code -> what it means (the report and the printed table show both).
REASONS: dict[str, str] = {
    "unreadable": "not a readable image (corrupt, truncated, unsupported or over the size limits)",
    "too_small": "too few pixels for the output resolution (the photo, or the person/garment/face in it)",
    "unlabelled": "no row for the photo in the labels file",
    "no_person": "no person where one is needed (an on-model photo was required)",
    "view_excluded": "a view that was not asked for (--views)",
    "low_visibility": "shoulders, hips or nose not visible enough (e.g. a legs-only or close-up shot)",
    "pose_inconsistent": "implausible body landmarks (side view, strong tilt, or not on the detected person)",
    "several_people": "more than one person in the photo",
    "extreme_crop": "the photo covers too little of the normalized frame (a close-up or a cut-off subject)",
    "no_foreground": "nothing but background (a blank photo)",
    "no_face": "no face found",
    "face_cut_off": "the face is partly outside the photo",
    "error": "an unexpected error while processing this photo (see the detail in report.json)",
}


@dataclasses.dataclass(frozen=True)
class Item:
    """One input photo."""

    key: str                    # Its path relative to the input folder, '/'-separated (unique).
    path: str                   # Its absolute path.
    view: str | None = None     # A view imposed by the source (e.g. VITON's image/ vs cloth/), or None.


@dataclasses.dataclass
class Output:
    """One image a processor made from a photo."""

    data: bytes                 # The encoded image (PNG or JPEG).
    view: str | None            # "flat" / "on_model" (fashion), None (faces).
    meta: dict[str, Any]        # JSON-serialisable facts: the transform, landmarks, ...


@dataclasses.dataclass
class Outcome:
    """What became of one photo: its output images, or why it was skipped."""

    key: str
    outputs: list[Output]
    reason: str | None = None   # A REASONS code when skipped.
    detail: str = ""            # Specifics for a person (numbers, the error message).
    view: str | None = None     # The view found before the photo was skipped (fashion), if any.

    @staticmethod
    def skip(key: str, reason: str, detail: str = "", view: str | None = None) -> Outcome:
        assert reason in REASONS, reason
        return Outcome(key=key, outputs=[], reason=reason, detail=detail, view=view)


Processor = Callable[[Item, Any], Outcome]


def encode_image(image: Image.Image, image_format: str, quality: int) -> bytes:
    """PNG (lossless) or JPEG at `quality` (4:2:0, no metadata: the bytes depend on pixels only)."""
    buf = io.BytesIO()
    if image_format == "png":
        image.save(buf, format="PNG", compress_level=6)
    elif image_format == "jpg":
        image.save(buf, format="JPEG", quality=int(quality), subsampling=2, optimize=False)
    else:
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    return buf.getvalue()


def run_processor(processor: Processor, item: Item, options: Any) -> Outcome:
    """Call `processor`, turning an unexpected exception into an "error" outcome so that one odd
    photo cannot end a run of thousands (the report lists it with its message)."""
    try:
        return processor(item, options)
    except Exception as exc:
        log.debug("processing %s failed:\n%s", item.key, traceback.format_exc())
        return Outcome.skip(item.key, "error", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


# ----------------------------------------------------------------------------------------------------
# Ordered parallel map.


def _init_worker(quiet: bool) -> None:
    if quiet:
        # mediapipe's native code logs to fd 2 on its first inference; in a worker that would tear
        # the progress bar. Errors still reach the parent as outcomes.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)


def _run_chunk(processor: Processor, items: Sequence[Item], options: Any) -> list[Outcome]:
    return [run_processor(processor, item, options) for item in items]


def ordered_map(
    processor: Processor,
    items: Sequence[Item],
    options: Any,
    *,
    workers: int,
    chunksize: int = 8,
    quiet_workers: bool = True,
) -> Iterator[Outcome]:
    """processor(item, options) for every item, yielded in input order.

    workers: 0 = in this process (no pool); N >= 1 = N spawned worker processes. At most 4 chunks per
    worker are in flight, so memory stays bounded however many photos there are.
    """
    if workers <= 0:
        for item in items:
            yield run_processor(processor, item, options)
        return
    chunks = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(quiet_workers,)
    ) as pool:
        pending: collections.deque[concurrent.futures.Future[list[Outcome]]] = collections.deque()
        next_chunk = 0
        try:
            while next_chunk < len(chunks) or pending:
                while next_chunk < len(chunks) and len(pending) < 4 * workers:
                    pending.append(pool.submit(_run_chunk, processor, chunks[next_chunk], options))
                    next_chunk += 1
                try:
                    chunk = pending.popleft().result()
                except concurrent.futures.process.BrokenProcessPool as exc:
                    raise RuntimeError(
                        "a dataset worker process died (crashed, or was killed for memory). From a script, "
                        "call the dataset tools under `if __name__ == '__main__':` (workers are spawned and "
                        "import the main module), or pass workers=0 to process in one process"
                    ) from exc
                yield from chunk
        except BaseException:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# ----------------------------------------------------------------------------------------------------
# Building a dataset.


@dataclasses.dataclass
class LabelPlan:
    """How label rows become label vectors."""

    columns: list[str]                                   # Columns in vector order (the view column last, if any).
    value: Callable[[str, Mapping[str, str]], str]       # (column, raw row) -> value (derived columns included).
    fixed_values: dict[str, list[str]]                   # Columns with fixed values (view, yes/no attributes).
    min_count: int = 1                                   # Rarer values go to "other".
    view_column: str | None = None                       # The column filled from each output's view.


@dataclasses.dataclass
class BuildResult:
    path: Path
    report: dict[str, Any]
    seconds: float

    @property
    def photos_per_second(self) -> float:
        return self.report["photos"] / self.seconds if self.seconds > 0 else float("nan")


def build_dataset(
    items: Sequence[Item],
    processor: Processor,
    options: Any,
    *,
    out: str | os.PathLike[str],
    rows: Mapping[str, Mapping[str, str]] | None,
    plan: LabelPlan,
    res: int,
    image_format: str,
    workers: int,
    tool: str,
    settings: Mapping[str, Any],
    preskipped: Sequence[Outcome] = (),
    progress: bool = True,
) -> BuildResult:
    """Process `items` and write the dataset zip at `out`.

    rows: {item key: raw label row} (None: no label file); items without a row must already be in
        `preskipped` (as "unlabelled").
    plan: which columns make the label vector.
    preskipped: outcomes decided before processing (counted in the report, in input order).
    settings: the options to record in report.json.
    """
    start = time.perf_counter()
    total = len(items) + len(preskipped)
    skipped: list[Outcome] = list(preskipped)
    kept_rows: list[dict[str, str]] = []
    names: list[str] = []
    frames: collections.Counter[str] = collections.Counter()
    metadata: dict[str, Any] = {}
    photos_kept = 0
    bar = progress_bar(total, tool, unit="photo", enabled=progress)
    bar.update(len(preskipped))
    with DatasetZipWriter(out, image_format=image_format) as writer:
        for outcome in ordered_map(processor, items, options, workers=workers):
            bar.update(1)
            if outcome.reason is not None:
                skipped.append(outcome)
            else:
                photos_kept += 1
                raw = rows.get(outcome.key, {}) if rows is not None else {}
                for k, output in enumerate(outcome.outputs):
                    row = {c: plan.value(c, raw) for c in plan.columns if c != plan.view_column}
                    if plan.view_column is not None:
                        assert output.view is not None, "a fashion output needs a view"
                        row[plan.view_column] = output.view
                    name = writer.add_image(output.data)
                    names.append(name)
                    if "frame" in output.meta:
                        frames[f"{output.view}/{output.meta['frame']}"] += 1
                    kept_rows.append(row)
                    several = {"face": k} if len(outcome.outputs) > 1 else {}
                    metadata[name] = {"source": outcome.key, **several, **output.meta}
            bar.set_postfix(kept=photos_kept, skipped=len(skipped), refresh=False)
        bar.close()
        schema = (
            build_schema(kept_rows, plan.columns, min_count=plan.min_count, fixed_values=plan.fixed_values)
            if plan.columns
            else None
        )
        labels = None
        if schema is not None:
            labels = [[name, encode_labels(schema, row).tolist()] for name, row in zip(names, kept_rows, strict=True)]
        report = _report(
            tool=tool,
            total=total,
            photos_kept=photos_kept,
            names=names,
            kept_rows=kept_rows,
            skipped=skipped,
            plan=plan,
            res=res,
            image_format=image_format,
            settings=settings,
            frames=frames,
        )
        schema_name = "label_schema.json" if schema else None
        writer.add_json("dataset.json", {"labels": labels, "resolution": res, "label_schema": schema_name})
        if schema is not None:
            writer.add_json("label_schema.json", schema)
        writer.add_json("report.json", report)
        writer.add_json("metadata.json", {"images": metadata})
        path = writer.finish()
    return BuildResult(path=path, report=report, seconds=time.perf_counter() - start)


def _report(
    *,
    tool: str,
    total: int,
    photos_kept: int,
    names: Sequence[str],
    kept_rows: Sequence[Mapping[str, str]],
    skipped: Sequence[Outcome],
    plan: LabelPlan,
    res: int,
    image_format: str,
    settings: Mapping[str, Any],
    frames: Mapping[str, int],
) -> dict[str, Any]:
    by_reason = collections.Counter(o.reason for o in skipped)
    by_view = collections.Counter(row[plan.view_column] for row in kept_rows) if plan.view_column else None
    skipped_by_view: dict[str, dict[str, int]] = {}
    for o in skipped:
        if o.view is not None:
            per = skipped_by_view.setdefault(o.view, {})
            per[str(o.reason)] = per.get(str(o.reason), 0) + 1
    skipped_sorted = sorted(skipped, key=lambda o: o.key)
    return {
        "tool": tool,
        "photos": total,
        "photos_kept": photos_kept,
        "photos_skipped": len(skipped),
        "images": len(names),
        "resolution": res,
        "format": image_format,
        "kept_by_view": dict(sorted(by_view.items())) if by_view is not None else None,
        "kept_by_frame": dict(sorted(frames.items())) or None,
        "skipped_by_reason": {r: by_reason[r] for r in REASONS if by_reason[r]},
        "skipped_by_view": (
            {v: dict(sorted(c.items())) for v, c in sorted(skipped_by_view.items())} if plan.view_column else None
        ),
        "reasons": {r: REASONS[r] for r in REASONS if by_reason[r]},
        "skipped": [
            {"photo": o.key, "reason": o.reason, "detail": o.detail, **({"view": o.view} if o.view else {})}
            for o in skipped_sorted
        ],
        "settings": dict(settings),
    }


def format_report(report: Mapping[str, Any], path: str | os.PathLike[str], seconds: float | None = None) -> str:
    """The table printed at the end of a run."""
    total = max(1, int(report["photos"]))
    lines = [
        f"{report['tool']}: {report['photos']} photos -> {report['images']} images "
        f"({report['resolution']}x{report['resolution']} {report['format']}) in {path}"
    ]
    if seconds is not None and seconds > 0:
        lines[0] += f" [{seconds:.1f} s, {report['photos'] / seconds:.1f} photos/s]"
    width = max([len(r) for r in report["skipped_by_reason"]] + [10])

    def row(label: str, n: int, note: str = "", share: bool = True) -> str:
        pct = f"{100.0 * n / total:5.1f}%" if share else "      "
        return f"  {label:<{width + 2}} {n:>7}  {pct}  {note}".rstrip()

    lines.append(row("kept", int(report["photos_kept"])))
    skipped_by_view = report.get("skipped_by_view") or {}
    frames = report.get("kept_by_frame") or {}
    for view, n in (report.get("kept_by_view") or {}).items():
        seen = int(n) + sum(skipped_by_view.get(view, {}).values())
        note = f"images: {int(n) / max(seen, 1):.1%} of the {seen} {view} photos"
        by_frame = [f"{k.split('/', 1)[1]} {v}" for k, v in frames.items() if k.startswith(view + "/")]
        if len(by_frame) > 1:
            note += f" (framed by {', '.join(by_frame)})"
        lines.append(row(f"  {view}", int(n), note, share=False))
    lines.append(row("skipped", int(report["photos_skipped"])))
    for reason, n in report["skipped_by_reason"].items():
        lines.append(row(f"  {reason}", int(n), report["reasons"][reason]))
    return "\n".join(lines)


def default_workers() -> int:
    """All the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # Not on Linux.
        return max(1, os.cpu_count() or 1)
