"""The campaign pack: a snapshot packed small, unpacked byte for byte, resumed bit-identically from a pack."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest
import safetensors.torch
import torch
from test_training_loop import STEP_KIMG, TINY

from training.campaign import (
    PACK_FILE,
    add_session,
    load_history,
    pack_snapshot,
    plot_history,
    read_pack,
    unpack_snapshot,
)
from training.snapshot import find_snapshot, load_snapshot
from tryon.checkpoint import load_checkpoint
from tryon.cli import main as tryon_main
from tryon.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(data_zip: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 4-step run, and a 2-step run of the same options (what a session leaves behind)."""
    out: dict[str, Path] = {}
    for steps in (2, 4):
        outdir = tmp_path_factory.mktemp(f"runs{steps}")
        argv = ["train", "--data", str(data_zip), "--outdir", str(outdir), "--kimg", str(steps * STEP_KIMG), *TINY]
        assert tryon_main(argv) == 0
        (out[str(steps)],) = outdir.iterdir()
    return out


def _snapshot(run_dir: Path) -> Path:
    return find_snapshot(run_dir)


def test_pack_unpacks_to_the_same_bytes_but_the_first_moments(runs: dict[str, Path], tmp_path: Path) -> None:
    snap = _snapshot(runs["2"])
    info = pack_snapshot(runs["2"], tmp_path / "campaign")
    assert info["bytes"] < info["raw_bytes"] and info["zeroed"] > 0
    dest = unpack_snapshot(tmp_path / "campaign")
    assert dest.name == snap.name
    assert not (dest / "samples.png").exists()  # Not needed to resume: left out of the pack.
    for p in snap.iterdir():
        if p.name not in ("resume.safetensors", "samples.png"):
            assert (dest / p.name).read_bytes() == p.read_bytes(), p.name
    a = safetensors.torch.load_file(snap / "resume.safetensors")
    b = safetensors.torch.load_file(dest / "resume.safetensors")
    assert a.keys() == b.keys()
    zeroed = [k for k in a if k.endswith(".exp_avg")]
    assert zeroed and any(a[k].any() for k in zeroed)  # The run's first moments were not zero.
    assert all(torch.equal(b[k], torch.zeros_like(b[k])) for k in zeroed)
    assert all(torch.equal(a[k], b[k]) for k in a if k not in zeroed)
    load_checkpoint(dest, names=None)  # config.json's sha256 of every network file still match.
    # A second resume from the same pack reuses the unpacked folder.
    assert unpack_snapshot(tmp_path / "campaign") == dest


def test_resume_from_a_pack_continues_bit_identically(data_zip: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """2 steps, packed, resumed from the pack for 2 more == 4 steps in one go: every weight and state."""
    pack_snapshot(runs["2"], tmp_path / "campaign")
    outdir = tmp_path / "resumed"
    argv = ["train", "--data", str(data_zip), "--outdir", str(outdir), "--kimg", str(4 * STEP_KIMG),
            "--resume", str(tmp_path / "campaign"), *TINY]
    assert tryon_main(argv) == 0
    (resumed,) = outdir.iterdir()
    a, b = _snapshot(runs["4"]), _snapshot(resumed)
    assert a.name == b.name
    for file in ("G.safetensors", "D.safetensors", "G_ema.safetensors", "resume.safetensors"):
        ta, tb = safetensors.torch.load_file(a / file), safetensors.torch.load_file(b / file)
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{file}: {key} differs"
    ja, jb = json.loads((a / "resume.json").read_text()), json.loads((b / "resume.json").read_text())
    for key in ("cur_nimg", "batch_idx", "augment_p", "ada", "seed"):
        assert ja[key] == jb[key], key


def test_first_moments_are_kept_where_beta1_is_not_zero(runs: dict[str, Path], tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    src = _snapshot(runs["2"])
    snap.mkdir()
    for p in src.iterdir():
        (snap / p.name).write_bytes(p.read_bytes())
    doc = json.loads((snap / "resume.json").read_text())
    for entry in doc["optimizers"].values():
        for g in entry["param_groups"]:
            g["betas"] = [0.9, 0.99]
    (snap / "resume.json").write_text(json.dumps(doc))
    info = pack_snapshot(snap, tmp_path / "campaign")
    assert info["zeroed"] == 0
    dest = unpack_snapshot(tmp_path / "campaign")
    assert (dest / "resume.safetensors").read_bytes() == (snap / "resume.safetensors").read_bytes()


def test_a_damaged_pack_is_refused_with_a_reason(runs: dict[str, Path], tmp_path: Path) -> None:
    pack_snapshot(runs["2"], tmp_path / "campaign")
    pack = tmp_path / "campaign" / PACK_FILE
    blob = pack.read_bytes()
    pack.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputError, match="not a packed snapshot"):
        load_snapshot(tmp_path / "campaign")
    raw = lzma.decompress(blob)
    pack.write_bytes(lzma.compress(raw[:-10]))
    with pytest.raises(InputError, match="truncated"):
        read_pack(pack)


def test_history_rows_and_plot(tmp_path: Path) -> None:
    assert load_history(tmp_path)["sessions"] == []
    add_session(tmp_path, {"kimg": 100, "fd": 0.7, "recall": 0.2})
    history = add_session(tmp_path, {"kimg": 130, "fd": 0.6, "recall": 0.25})
    assert [r["kimg"] for r in history["sessions"]] == [100, 130]
    plot_history(history["sessions"], ["fd", "recall"], tmp_path / "plot.png")
    from PIL import Image

    with Image.open(tmp_path / "plot.png") as im:
        assert im.size == (520, 170)


def test_campaign_verbs_pack_record_and_show(runs: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    campaign = tmp_path / "campaign"
    assert tryon_main(["campaign", "pack", str(runs["2"]), str(campaign)]) == 0
    assert "packed network-snapshot-" in capsys.readouterr().out
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({"results": {"fd": 0.5, "recall": 0.3, "cond_acc": 0.8, "cond_acc/view": 0.99}}))
    assert tryon_main(["campaign", "record", str(campaign), "--kimg", "130", "--cpu-hours", "2.5",
                       "--metrics", str(metrics), "--note", "test"]) == 0
    out = capsys.readouterr().out
    assert "| 130 | 2.5 |" in out and "cond_acc/view" in out
    assert (campaign / "campaign.png").is_file()
    assert tryon_main(["campaign", "record", str(campaign), "--kimg", "1", "--cpu-hours", "1",
                       "--metrics", str(tmp_path / "missing.json")]) != 0
    assert "missing.json" in capsys.readouterr().err
