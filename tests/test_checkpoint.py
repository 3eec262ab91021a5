"""Checkpoints: safetensors + JSON round trip, strict loading, and the safe NVlabs pickle import.

The NVlabs tests build real-looking `network-snapshot-*.pkl` files: a stand-in for NVlabs'
`torch_utils/persistence.py` and `dnnlib/util.py` is written into a temporary folder and put on
sys.path only inside the test. Its `persistent_class` pickles objects exactly like NVlabs' does
(reduce to `_reconstruct_persistent_obj(meta)` with meta = {type, version, module_src, class_name,
state}, where state is the module's `__dict__` with `_parameters`, `_buffers`, `_modules`,
`_init_args`, `_init_kwargs`), and its `_reconstruct_persistent_obj` executes `module_src` the way
the real one does, so the malicious-pickle tests can show that the payload is live.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tryon.checkpoint import (
    CONFIG_FILE,
    LabelSchema,
    convert_nvlabs_pickle,
    export_checkpoint,
    load_checkpoint,
    read_checkpoint_config,
    read_nvlabs_pickle,
    save_checkpoint,
)
from tryon.errors import CheckpointError, InputError, UnsafePickleError
from tryon.nn import Discriminator, Generator

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURE = SHARED / "fixtures" / "sg2_cond64_small.npz"

G_KWARGS: dict[str, Any] = dict(
    z_dim=8, c_dim=4, w_dim=8, img_resolution=16, img_channels=3,
    mapping_kwargs=dict(num_layers=2),
    synthesis_kwargs=dict(channel_base=64, channel_max=16, num_fp16_res=0, conv_clamp=256),
)
D_KWARGS: dict[str, Any] = dict(
    c_dim=4, img_resolution=16, img_channels=3, architecture="resnet", channel_base=64, channel_max=16,
    num_fp16_res=0, conv_clamp=256, cmap_dim=None, block_kwargs={}, mapping_kwargs={},
    epilogue_kwargs=dict(mbstd_group_size=4),
)


def _randomize(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every parameter and buffer distinct random values (init values are often all 0 / 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.add_(0.1 * torch.randn(tensor.shape, generator=gen))
    return module.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def nets() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    G = _randomize(Generator(**G_KWARGS), 1)
    G_ema = _randomize(Generator(**G_KWARGS), 2)
    D = _randomize(Discriminator(**D_KWARGS), 3)
    return {"G_ema": G_ema, "G": G, "D": D}


SCHEMA = {"columns": [{"name": "gender", "values": ["Men", "Women"]}, {"name": "view", "values": ["flat", "model"]}]}


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "networks": {"G_ema": {"kwargs": G_KWARGS}, "G": {"kwargs": G_KWARGS}, "D": {"kwargs": D_KWARGS}},
        **extra,
    }


@pytest.fixture()
def saved(tmp_path: Path, nets: dict[str, torch.nn.Module]) -> Path:
    return save_checkpoint(
        tmp_path / "ckpt", nets, _config(label_schema=SCHEMA, training={"kimg": 12, "fid": 41.5})
    )


# ----------------------------------------------------------------------------------------------------
# Save / load round trip and strictness.


def test_round_trip_is_exact(saved: Path, nets: dict[str, torch.nn.Module]) -> None:
    names = sorted(p.name for p in saved.iterdir())
    assert names == ["D.safetensors", "G.safetensors", "G_ema.safetensors", CONFIG_FILE]
    ckpt = load_checkpoint(saved, names=None)
    assert set(ckpt.networks) == {"G_ema", "G", "D"}
    for name, module in nets.items():
        loaded = ckpt.networks[name]
        assert type(loaded) is type(module)
        ref = module.state_dict()
        got = loaded.state_dict()
        assert list(got) == list(ref)
        for key in ref:
            assert got[key].dtype == ref[key].dtype
            assert torch.equal(got[key], ref[key]), key
        assert not loaded.training
        assert not any(p.requires_grad for p in loaded.parameters())
    assert ckpt.label_schema is not None
    assert LabelSchema.from_json(ckpt.label_schema) == LabelSchema.from_json(SCHEMA)
    assert ckpt.label_schema["dim"] == 4 and ckpt.label_schema["columns"][1]["offset"] == 2  # Made explicit.
    assert ckpt.training == {"kimg": 12, "fid": 41.5}
    doc = json.loads((saved / CONFIG_FILE).read_text())
    assert doc["format_version"] == 1
    assert doc["networks"]["G_ema"]["class"] == "Generator"
    assert doc["networks"]["D"]["class"] == "Discriminator"
    assert doc["networks"]["G_ema"]["kwargs"] == G_KWARGS
    digest = hashlib.sha256((saved / "G_ema.safetensors").read_bytes()).hexdigest()
    assert doc["networks"]["G_ema"]["sha256"] == digest
    # Buffers are saved too (w_avg, noise_const, resample_filter).
    assert "mapping.w_avg" in ckpt.networks["G_ema"].state_dict()


def test_loaded_generator_gives_the_same_images(saved: Path, nets: dict[str, torch.nn.Module]) -> None:
    G = load_checkpoint(saved).networks["G_ema"]
    z = torch.randn([2, 8], generator=torch.Generator().manual_seed(5))
    c = torch.eye(4)[[0, 3]]
    with torch.no_grad():
        assert torch.equal(G(z, c, noise_mode="const"), nets["G_ema"](z, c, noise_mode="const"))


def test_default_loads_only_g_ema(saved: Path) -> None:
    assert list(load_checkpoint(saved).networks) == ["G_ema"]


def test_flipped_byte_fails_the_hash_check(saved: Path) -> None:
    path = saved / "G_ema.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # Inside the tensor data: still a valid safetensors file.
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(saved)


def test_extra_key_is_refused(saved: Path) -> None:
    import safetensors.torch

    path = saved / "G_ema.safetensors"
    tensors = safetensors.torch.load(path.read_bytes())
    tensors["mapping.sneaky"] = torch.zeros(3)
    _rewrite_weights(saved, "G_ema", tensors)
    with pytest.raises(CheckpointError, match=r"unexpected keys \[mapping.sneaky\]"):
        load_checkpoint(saved)


def test_missing_key_wrong_shape_and_dtype_are_refused(saved: Path) -> None:
    import safetensors.torch

    original = safetensors.torch.load((saved / "G_ema.safetensors").read_bytes())
    tensors = dict(original)
    del tensors["mapping.w_avg"]
    _rewrite_weights(saved, "G_ema", tensors)
    with pytest.raises(CheckpointError, match=r"missing keys \[mapping.w_avg\]"):
        load_checkpoint(saved)
    tensors = dict(original, **{"mapping.w_avg": torch.zeros(9)})
    _rewrite_weights(saved, "G_ema", tensors)
    with pytest.raises(CheckpointError, match=r"mapping.w_avg has shape \[9\]"):
        load_checkpoint(saved)
    tensors = dict(original, **{"mapping.w_avg": original["mapping.w_avg"].double()})
    _rewrite_weights(saved, "G_ema", tensors)
    with pytest.raises(CheckpointError, match=r"dtype torch\.float64"):
        load_checkpoint(saved)


def _rewrite_weights(directory: Path, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Tamper with a weights file and update its hash, so only the strict key check can catch it."""
    import safetensors.torch

    blob = safetensors.torch.save(tensors)
    (directory / f"{name}.safetensors").write_bytes(blob)
    doc = json.loads((directory / CONFIG_FILE).read_text())
    doc["networks"][name]["sha256"] = hashlib.sha256(blob).hexdigest()
    (directory / CONFIG_FILE).write_text(json.dumps(doc))


def test_missing_things_give_clear_errors(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="folder not found"):
        load_checkpoint(tmp_path / "nope")
    (saved / "G.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"G\.safetensors is missing"):
        load_checkpoint(saved, names=("G",))
    with pytest.raises(CheckpointError, match="has no network 'E'"):
        load_checkpoint(saved, names=("E",))
    (saved / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(saved)
    (saved / CONFIG_FILE).unlink()
    with pytest.raises(CheckpointError, match=r"config\.json is missing"):
        load_checkpoint(saved)


def test_unknown_class_and_bad_file_names_are_refused(saved: Path) -> None:
    doc = json.loads((saved / CONFIG_FILE).read_text())
    doc["networks"]["G_ema"]["class"] = "os.system"
    (saved / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match=r"unknown class 'os\.system'"):
        load_checkpoint(saved)
    doc["networks"]["G_ema"]["class"] = "Generator"
    doc["networks"]["G_ema"]["file"] = "../G_ema.safetensors"
    (saved / CONFIG_FILE).write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="outside the checkpoint"):
        read_checkpoint_config(saved)


def test_save_is_atomic_and_refuses_to_clobber(tmp_path: Path, nets: dict[str, torch.nn.Module]) -> None:
    target = tmp_path / "ckpt"
    save_checkpoint(target, {"G_ema": nets["G_ema"]}, {"networks": {"G_ema": {"kwargs": G_KWARGS}}})
    with pytest.raises(CheckpointError, match="already exists"):
        save_checkpoint(target, {"G_ema": nets["G"]}, {"networks": {"G_ema": {"kwargs": G_KWARGS}}})

    # A crash half way (here: a kwargs value that cannot be written) leaves the old checkpoint whole.
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        save_checkpoint(target, {"G_ema": nets["G"]}, {"networks": {"G_ema": {"kwargs": {"x": object()}}}},
                        overwrite=True)
    assert torch.equal(load_checkpoint(target).networks["G_ema"].mapping.w_avg, nets["G_ema"].mapping.w_avg)
    save_checkpoint(target, {"G_ema": nets["G"]}, {"networks": {"G_ema": {"kwargs": G_KWARGS}}}, overwrite=True)
    assert torch.equal(load_checkpoint(target).networks["G_ema"].mapping.w_avg, nets["G"].mapping.w_avg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # No temporary folders left behind.
    # A folder that is not a checkpoint is never replaced.
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("precious")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        save_checkpoint(other, {"G_ema": nets["G"]}, {"networks": {"G_ema": {"kwargs": G_KWARGS}}}, overwrite=True)
    assert (other / "notes.txt").read_text() == "precious"


def test_save_needs_kwargs_and_a_known_class(tmp_path: Path, nets: dict[str, torch.nn.Module]) -> None:
    with pytest.raises(ValueError, match="no constructor kwargs"):
        save_checkpoint(tmp_path / "a", {"G_ema": nets["G_ema"]})
    with pytest.raises(CheckpointError, match="not a registered network class"):
        save_checkpoint(tmp_path / "b", {"E": torch.nn.Linear(2, 2)}, {"networks": {"E": {"kwargs": {}}}})
    with pytest.raises(ValueError, match="unknown checkpoint config keys"):
        save_checkpoint(tmp_path / "c", {"G_ema": nets["G_ema"]}, {"kwargs": {}})


def test_label_schema_forms() -> None:
    listed = LabelSchema.from_json(SCHEMA)
    mapped = LabelSchema.from_json({"columns": {"gender": ["Men", "Women"], "view": {"values": ["flat", "model"]}}})
    assert listed == mapped
    assert listed.dim == 4 and [c.offset for c in listed.columns] == [0, 2]
    assert listed.encode({"gender": "Women", "view": "model"}).tolist() == [0, 1, 0, 1]
    assert listed.index("View", "FLAT") == 2  # Case-insensitive when unambiguous.
    with pytest.raises(InputError, match="unknown value 'Kids' for label 'gender'"):
        listed.encode({"gender": "Kids"})
    with pytest.raises(InputError, match="unknown label 'colour'"):
        listed.encode({"colour": "Black"})
    with pytest.raises(CheckpointError, match="overlaps"):
        LabelSchema.from_json(
            {"columns": [{"name": "a", "values": ["x", "y"]}, {"name": "b", "values": ["z"], "offset": 1}]}
        )


# ----------------------------------------------------------------------------------------------------
# NVlabs pickles.

PERSISTENCE_SRC = '''
"""Stand-in for NVlabs torch_utils/persistence.py: same pickle layout, written for these tests."""
import copy
import inspect
import sys
import types
import uuid

import dnnlib

_version = 6
_decorators = {}


def persistent_class(orig_class, module_src=None):
    """A subclass of orig_class that pickles as _reconstruct_persistent_obj(meta), like NVlabs'."""
    if module_src is None:
        module_src = inspect.getsource(sys.modules[orig_class.__module__])
    key = (orig_class, module_src)
    if key in _decorators:
        return _decorators[key]

    class Decorator(orig_class):
        _orig_module_src = module_src
        _orig_class_name = orig_class.__name__

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._init_args = copy.deepcopy(args)
            self._init_kwargs = copy.deepcopy(kwargs)

        def __reduce__(self):
            fields = list(super().__reduce__())
            fields += [None] * max(3 - len(fields), 0)
            if fields[0] is not _reconstruct_persistent_obj:
                meta = dict(type="class", version=_version, module_src=self._orig_module_src,
                            class_name=self._orig_class_name, state=fields[2])
                fields[0] = _reconstruct_persistent_obj
                fields[1] = (meta,)
                fields[2] = None
            return tuple(fields)

    Decorator.__name__ = orig_class.__name__
    _decorators[key] = Decorator
    return Decorator


def make_persistent(module, init_args=(), init_kwargs=None, module_src=None):
    """Turn a module tree into persistent objects in place, as if built from decorated classes."""
    for sub in module.modules():
        sub.__class__ = persistent_class(type(sub), module_src)
        sub._init_args = ()
        sub._init_kwargs = {}
    module._init_args = copy.deepcopy(tuple(init_args))
    module._init_kwargs = copy.deepcopy(init_kwargs or {})
    return module


def _reconstruct_persistent_obj(meta):
    """What NVlabs does on load: exec the stored module source, then rebuild the object."""
    module = types.ModuleType("_imported_module_" + uuid.uuid4().hex)
    exec(meta["module_src"], module.__dict__)
    orig_class = module.__dict__[meta["class_name"]]
    obj = persistent_class(orig_class, meta["module_src"]).__new__(persistent_class(orig_class, meta["module_src"]))
    obj.__setstate__(meta["state"])
    return obj
'''

DNNLIB_UTIL_SRC = '''
class EasyDict(dict):
    """Stand-in for NVlabs dnnlib.util.EasyDict: a dict with attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name)

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]
'''


class AugmentPipe(torch.nn.Module):
    """Enough of NVlabs' AugmentPipe for a snapshot: float attributes and the probability buffer p."""

    def __init__(self, xflip: float = 1, rotate90: float = 1) -> None:
        super().__init__()
        self.xflip = float(xflip)
        self.rotate90 = float(rotate90)
        self.register_buffer("p", torch.ones([]))


@pytest.fixture()
def nvlabs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The stand-in NVlabs packages, importable only for the duration of one test."""
    root = tmp_path / "nvlabs_src"
    (root / "torch_utils").mkdir(parents=True)
    (root / "dnnlib").mkdir()
    (root / "torch_utils" / "__init__.py").write_text("")
    (root / "torch_utils" / "persistence.py").write_text(PERSISTENCE_SRC)
    (root / "dnnlib" / "__init__.py").write_text("from .util import EasyDict\n")
    (root / "dnnlib" / "util.py").write_text(DNNLIB_UTIL_SRC)
    saved_modules = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("torch_utils", "dnnlib")}
    monkeypatch.syspath_prepend(str(root))
    import dnnlib
    import torch_utils.persistence

    yield torch_utils.persistence, dnnlib
    for name in [k for k in sys.modules if k.split(".")[0] in ("torch_utils", "dnnlib")]:
        del sys.modules[name]
    sys.modules.update(saved_modules)


def _write_snapshot(
    path: Path,
    nvlabs: Any,
    nets: dict[str, torch.nn.Module],
    kwargs: dict[str, dict[str, Any]],
    protocol: int = 3,
    module_src: str | None = None,
) -> Path:
    """Pickle G, D, G_ema (+ augment_pipe, training_set_kwargs) the way NVlabs' training loop does."""
    persistence, dnnlib = nvlabs

    def easy(d: dict[str, Any]) -> Any:
        return dnnlib.EasyDict({k: easy(v) if isinstance(v, dict) else v for k, v in d.items()})

    snapshot: dict[str, Any] = dict(
        training_set_kwargs=dict(class_name="training.dataset.ImageFolderDataset", path="/data/fashion.zip",
                                 use_labels=True, max_size=8626, xflip=False, resolution=16),
    )
    for name, module in nets.items():
        copied = copy.deepcopy(module).eval().requires_grad_(False)
        snapshot[name] = persistence.make_persistent(copied, init_kwargs=easy(kwargs[name]), module_src=module_src)
    augment = AugmentPipe(xflip=1, rotate90=1)
    augment.p.fill_(0.25)
    snapshot["augment_pipe"] = persistence.make_persistent(augment, init_kwargs=dict(xflip=1, rotate90=1))
    with open(path, "wb") as f:
        pickle.dump(snapshot, f, protocol=protocol)
    return path


NVLABS_KWARGS = {"G_ema": G_KWARGS, "G": G_KWARGS, "D": D_KWARGS}


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_nvlabs_snapshot_converts_exactly(
    tmp_path: Path, nvlabs: Any, nets: dict[str, torch.nn.Module], protocol: int
) -> None:
    pkl = _write_snapshot(tmp_path / "network-snapshot-000100.pkl", nvlabs, nets, NVLABS_KWARGS, protocol)
    # The file really is an NVlabs-style pickle: the generic unpickler needs the persistence module.
    assert b"torch_utils.persistence" in pkl.read_bytes() and b"_init_kwargs" in pkl.read_bytes()
    out = convert_nvlabs_pickle(pkl, tmp_path / "converted")
    ckpt = load_checkpoint(out, names=None)
    for name, module in nets.items():
        ref = module.state_dict()
        got = ckpt.networks[name].state_dict()
        assert list(got) == list(ref)
        assert all(torch.equal(got[k], ref[k]) for k in ref), name
    # Parity: the converted G_ema and D compute exactly what the original modules compute.
    z = torch.from_numpy(np.random.RandomState(7).randn(3, 8)).float()
    c = torch.eye(4)[[0, 1, 3]]
    with torch.no_grad():
        for psi in (1.0, 0.7):
            img_ref = nets["G_ema"](z, c, truncation_psi=psi, noise_mode="const")
            img = ckpt.networks["G_ema"](z, c, truncation_psi=psi, noise_mode="const")
            assert torch.equal(img, img_ref)
        assert torch.equal(ckpt.networks["D"](img, c), nets["D"](img, c))
    training = ckpt.training
    assert training is not None
    source = training["imported_from"]
    assert source["file"] == pkl.name
    assert source["sha256"] == hashlib.sha256(pkl.read_bytes()).hexdigest()
    assert source["networks"]["G_ema"]["class_name"] == "Generator"
    assert source["networks"]["D"]["persistence_version"] == 6
    assert training["training_set_kwargs"]["use_labels"] is True
    assert training["augment_p"] == pytest.approx(0.25)
    assert ckpt.config["networks"]["G_ema"]["kwargs"] == G_KWARGS
    assert ckpt.config["networks"]["D"]["kwargs"]["epilogue_kwargs"] == {"mbstd_group_size": 4}


def test_conversion_refuses_weights_that_do_not_fit(
    tmp_path: Path, nvlabs: Any, nets: dict[str, torch.nn.Module]
) -> None:
    wrong = dict(NVLABS_KWARGS, G_ema=dict(G_KWARGS, mapping_kwargs=dict(num_layers=3)))
    pkl = _write_snapshot(tmp_path / "snap.pkl", nvlabs, nets, wrong)
    expected = r"G_ema of the pickle do not match Generator: missing keys \[mapping\.fc2\.weight"
    with pytest.raises(CheckpointError, match=expected):
        convert_nvlabs_pickle(pkl, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not FIXTURE.is_file(), reason=f"needs the NVlabs reference fixture {FIXTURE}")
def test_nvlabs_reference_weights_give_reference_images(tmp_path: Path, nvlabs: Any) -> None:
    """A pickle holding the weights of NVlabs' own reference run converts into networks that
    reproduce NVlabs' images and logits (the numbers in ../shared/fixtures)."""
    data = np.load(FIXTURE, allow_pickle=False)
    kw = json.loads(str(data["kwargs_json"]))
    G = Generator(**kw["G_kwargs"]).eval()
    D = Discriminator(**kw["D_kwargs"]).eval()
    for net, prefix in ((G, "G/"), (D, "D/")):
        net.load_state_dict({k[2:]: torch.from_numpy(data[k]) for k in data.files if k.startswith(prefix)})
    pkl = _write_snapshot(
        tmp_path / "ref.pkl", nvlabs, {"G_ema": G, "D": D}, {"G_ema": kw["G_kwargs"], "D": kw["D_kwargs"]}
    )
    ckpt = load_checkpoint(convert_nvlabs_pickle(pkl, tmp_path / "ref"), names=None)
    z, c = torch.from_numpy(data["in/z"]), torch.from_numpy(data["in/c"])
    with torch.no_grad():
        img = ckpt.networks["G_ema"](z, c, noise_mode="const")
        logits = ckpt.networks["D"](img, c)
    torch.testing.assert_close(img, torch.from_numpy(data["out/img_psi1"]), atol=1e-4, rtol=0)
    torch.testing.assert_close(logits, torch.from_numpy(data["out/D_logits_img_psi1"]), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------------------------------
# Malicious pickles.


class _Reduce:
    """Pickles as `func(*args)`: the classic pickle payload."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


def _marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('pwned')"


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "tryon.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_cli_refuses_malicious_pickles(tmp_path: Path, nvlabs: Any) -> None:
    import builtins
    import subprocess as sp

    marker = tmp_path / "marker"
    persistence, _ = nvlabs
    code_meta = dict(type="class", version=6, module_src=_marker_code(marker), class_name="Generator", state={})
    payloads = {
        "os_system": {"G_ema": _Reduce(os.system, f"touch {marker}")},
        "exec": {"G_ema": _Reduce(builtins.exec, _marker_code(marker))},
        "subprocess": {"G": None, "G_ema": _Reduce(sp.Popen, ["touch", str(marker)])},
        # The persistence payload: NVlabs' loader would exec module_src (shown below); ours never does.
        "module_src": {"G_ema": _Reduce(persistence._reconstruct_persistent_obj, code_meta)},
    }
    for name, payload in payloads.items():
        pkl = tmp_path / f"{name}.pkl"
        pkl.write_bytes(pickle.dumps(payload, protocol=3))
    # Control: the payloads are live. Loading one with the NVlabs-style loader runs its code.
    with pytest.raises(KeyError):  # exec ran, then the class is missing from the fake module.
        pickle.loads((tmp_path / "module_src.pkl").read_bytes())
    assert marker.read_text() == "pwned"
    marker.unlink()

    # One subprocess for all four (each `tryon` start imports torch): a small driver script.
    driver = textwrap.dedent(
        """
        import sys
        from tryon.cli import main
        for name in sys.argv[1:]:
            rc = main(["convert-checkpoint", name + ".pkl", name + "_out"])
            print(f"RC {name} {rc}", flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", driver, *payloads], cwd=tmp_path, capture_output=True, text=True, check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert [line for line in result.stdout.splitlines()] == [f"RC {name} 1" for name in payloads]
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(payloads), result.stderr  # One readable line each, no traceback.
    assert "posix.system" in errors[0] and "not on the allow-list" in errors[0]
    assert "builtins.exec" in errors[1]
    assert "subprocess.Popen" in errors[2]
    assert "G_ema in the pickle has no constructor arguments" in errors[3]
    assert not marker.exists()
    assert not any(p.name.endswith("_out") for p in tmp_path.iterdir())


def test_cli_converts_a_real_snapshot_whose_code_is_hostile_without_running_it(
    tmp_path: Path, nvlabs: Any, nets: dict[str, torch.nn.Module]
) -> None:
    """A genuine snapshot whose stored module source would write a file: the weights convert, the
    code never runs. Also the end-to-end CLI path (exit code, summary line, strict re-load)."""
    marker = tmp_path / "marker"
    pkl = _write_snapshot(tmp_path / "snap.pkl", nvlabs, nets, NVLABS_KWARGS, module_src=_marker_code(marker))
    result = _run_cli("convert-checkpoint", str(pkl), str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "G_ema, G, D" in result.stdout
    assert not marker.exists()
    G = load_checkpoint(tmp_path / "out").networks["G_ema"]
    assert torch.equal(G.mapping.w_avg, nets["G_ema"].mapping.w_avg)


def test_unpickler_refuses_persistent_ids_bad_tensors_and_nested_payloads(tmp_path: Path) -> None:
    class WithPid(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "x" if isinstance(obj, bytes) else None

    buf = io.BytesIO()
    WithPid(buf, protocol=3).dump({"G_ema": b"abc"})
    (tmp_path / "pid.pkl").write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        read_nvlabs_pickle(tmp_path / "pid.pkl")

    from torch._utils import _rebuild_tensor_v2
    from torch.storage import _load_from_bytes

    storage = torch.arange(4.0)._typed_storage()
    huge = _Reduce(_rebuild_tensor_v2, storage, 0, (1000,), (1,), False, {})
    (tmp_path / "huge.pkl").write_bytes(pickle.dumps({"G_ema": huge}, protocol=3))
    with pytest.raises(UnsafePickleError, match="malformed tensor"):
        read_nvlabs_pickle(tmp_path / "huge.pkl")

    # A storage whose legacy torch.save bytes hide a payload: torch's weights_only unpickler refuses it.
    nested = _Reduce(_load_from_bytes, pickle.dumps(_Reduce(os.system, "true"), protocol=2))
    (tmp_path / "nested.pkl").write_bytes(pickle.dumps({"G_ema": nested}, protocol=3))
    with pytest.raises(UnsafePickleError, match="could not be read safely"):
        read_nvlabs_pickle(tmp_path / "nested.pkl")

    (tmp_path / "junk.pkl").write_bytes(b"\x80\x03not a pickle")
    with pytest.raises(CheckpointError, match="not a readable NVlabs network pickle"):
        read_nvlabs_pickle(tmp_path / "junk.pkl")


# ----------------------------------------------------------------------------------------------------
# Export of a training snapshot (`tryon export`).


def test_export_keeps_the_named_networks_the_grid_and_the_model_card(saved: Path, tmp_path: Path) -> None:
    (saved / "samples.png").write_bytes(b"grid")
    out = tmp_path / "assets" / "face"
    assert export_checkpoint(saved, out, names=["G_ema", "D"]) == out
    assert sorted(p.name for p in out.iterdir()) == sorted(["D.safetensors", CONFIG_FILE, "G_ema.safetensors",
                                                             "sample_grid.png"])
    doc, src = read_checkpoint_config(out), read_checkpoint_config(saved)
    assert list(doc["networks"]) == ["G_ema", "D"] and doc["training"] == {"kimg": 12, "fid": 41.5}
    assert doc["networks"]["G_ema"] == src["networks"]["G_ema"] and doc["label_schema"] == src["label_schema"]
    assert (out / "G_ema.safetensors").read_bytes() == (saved / "G_ema.safetensors").read_bytes()
    load_checkpoint(out, names=None)

    # Exporting again replaces the networks (with --force only) and keeps the card written meanwhile.
    (out / "MODEL_CARD.md").write_text("# card\n")
    with pytest.raises(CheckpointError, match="already exists"):
        export_checkpoint(saved, out, names=["G_ema"])
    export_checkpoint(saved, out, names=["G_ema"], overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, "G_ema.safetensors", "MODEL_CARD.md",
                                                             "sample_grid.png"])
    assert (out / "MODEL_CARD.md").read_text() == "# card\n"
    with pytest.raises(CheckpointError, match="has no network 'E'"):
        export_checkpoint(saved, tmp_path / "other", names=["E"])
    assert not (tmp_path / "other").exists()


def test_export_command(saved: Path, tmp_path: Path) -> None:
    result = _run_cli("export", str(saved), str(tmp_path / "out"), "--networks", "G_ema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and "G_ema" in result.stdout and "kimg 12" in result.stdout
    result = _run_cli("export", str(saved), str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode != 0 and "already exists" in result.stderr and "Traceback" not in result.stderr


def test_export_of_a_campaign_run_records_the_campaign_kimg(saved: Path, tmp_path: Path) -> None:
    # A campaign run that started from other weights at 98.5 kimg counts its own kimg from 0; the
    # shipped model (and what is fitted on it) must say 98.5 + 12.
    campaign = tmp_path / "campaign"
    campaign.mkdir()
    (campaign / "campaign.json").write_text('{"model": "face", "kimg_offset": 98.5, "sessions": []}')
    result = _run_cli("export", str(saved), str(tmp_path / "out"), "--campaign", str(campaign), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kimg 110.5" in result.stdout
    assert read_checkpoint_config(tmp_path / "out")["training"] == {
        "kimg": 110.5, "run_kimg": 12, "kimg_offset": 98.5, "fid": 41.5}
    result = _run_cli("export", str(saved), str(tmp_path / "other"), "--campaign", str(tmp_path / "none"),
                      cwd=tmp_path)
    assert result.returncode != 0 and "cannot read" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "other").exists()
