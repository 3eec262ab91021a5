"""Checkpoints: safetensors weights + a JSON config, loaded strictly; safe import of NVlabs pickles.

A checkpoint is a folder:

    config.json           {"format": "tryon-checkpoint", "format_version": 1,
                           "networks": {NAME: {"class": "Generator", "kwargs": {...},
                                               "file": "NAME.safetensors", "sha256": "..."}},
                           "label_schema": {...} | null, "training": {...} | null}
    NAME.safetensors      the network's state dict: parameters and (persistent) buffers

Loading never unpickles. Each network is rebuilt from an allow-list of our own classes (see
`network_classes`) with the recorded constructor kwargs, and its weights are loaded with
`strict=True` after the file's sha256, every key, shape and dtype have been checked.

NVlabs stylegan2-ada-pytorch snapshots (`network-snapshot-*.pkl`) are pickles that carry code.
`convert_nvlabs_pickle` reads them with a restricted unpickler that maps a short allow-list of
globals to rebuilders of our own (tensors, storages, plain dicts) and refuses everything else; the
source code stored inside the pickle is never executed.

Modules: `format` (the folder, saving and strict loading, the network-class allow-list), `nvlabs`
(the restricted unpickler and the conversion) and `export` (a training snapshot into a shippable
checkpoint). Import from the package: `from tryon.checkpoint import load_checkpoint`.
"""

from tryon.checkpoint.export import MODEL_CARD_FILE, SAMPLE_GRID_FILE, export_checkpoint
from tryon.checkpoint.format import (
    CONFIG_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    WEIGHTS_SUFFIX,
    Checkpoint,
    load_checkpoint,
    network_classes,
    read_checkpoint_config,
    register_network_class,
    save_checkpoint,
)
from tryon.checkpoint.nvlabs import (
    PersistentRecord,
    convert_nvlabs_pickle,
    network_from_record,
    read_nvlabs_pickle,
    record_state_dict,
)
from tryon.labels import LabelSchema  # The checkpoint's label schema; tryon.checkpoint always offered it.

__all__ = [
    "CONFIG_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MODEL_CARD_FILE",
    "SAMPLE_GRID_FILE",
    "WEIGHTS_SUFFIX",
    "Checkpoint",
    "LabelSchema",
    "PersistentRecord",
    "convert_nvlabs_pickle",
    "export_checkpoint",
    "load_checkpoint",
    "network_classes",
    "network_from_record",
    "read_checkpoint_config",
    "read_nvlabs_pickle",
    "record_state_dict",
    "register_network_class",
    "save_checkpoint",
]
