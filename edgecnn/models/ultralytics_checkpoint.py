"""Read an Ultralytics detection checkpoint (`yolov8n.pt`, a `best.pt` of theirs) without running it.

Such a file is `torch.save` of a dict holding pickled Ultralytics module objects: loading it the
usual way imports `ultralytics` and runs whatever the pickle names. Here the pickle goes through a
restricted unpickler: tensors, storages and plain containers are rebuilt; every class of
`ultralytics`, `torch.nn` and a few metadata namespaces becomes an inert `Stub` that only records
the state it is given (nothing of theirs is imported or called); any other global (`os.system`,
`builtins.eval`, …) is refused before anything runs. The weights then come out of the stubs'
recorded `_parameters` / `_buffers`, exactly as `nn.Module.state_dict` walks them.

`read_ultralytics(path)` returns an edgecnn checkpoint dict for the matching model of
`edgecnn.models.yolo_v8_11` (yolov8n/s, yolo11n/s), so `load_checkpoint` takes either file.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from edgecnn.models.yolo_v8_11 import FAMILIES, SCALES

# Real callables the pickle may name: they rebuild tensors, parameters and containers only.
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
}
# Namespaces whose classes become inert stubs: the model's modules, and what Ultralytics keeps in
# `train_args` / `train_metrics` (paths, namespaces, numpy scalars). A stub never calls anything.
_STUBBED = ("ultralytics.", "torch.nn.modules.", "pathlib", "types", "argparse", "numpy", "datetime")
TASK_HEADS = {"Detect": "detect", "Segment": "segment", "Pose": "pose", "OBB": "obb", "Classify": "classify",
              "WorldDetect": "detect (YOLO-World)", "YOLOEDetect": "detect (YOLOE)", "v10Detect": "detect (YOLOv10)",
              "RTDETRDecoder": "detect (RT-DETR)", "Segment26": "segment", "Pose26": "pose", "OBB26": "obb"}
# Ultralytics' layer names for our layer kinds, to recognize an architecture by its layers
_THEIR_NAMES = {"conv": "Conv", "c2f": "C2f", "c3k2": "C3k2", "sppf": "SPPF", "c2psa": "C2PSA", "up": "Upsample",
                "cat": "Concat", "detect": "Detect"}


class Stub:
    """An object of a class that is not imported: its qualified name, constructor args and state."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def get(self, key: str, default: Any = None) -> Any:
        """An attribute of the recorded object (`__dict__` state)."""
        state = getattr(self, "state", None)
        return state.get(key, default) if isinstance(state, dict) else default


class RefusedGlobal(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    _stubs: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        # protocol 2 names Python 2's modules (`__builtin__.set`); map them as pickle's own find_class does
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        # the module's own dict: getattr(torch, name) may import torch submodules lazily
        if module == "torch" and isinstance(torch.__dict__.get(name), torch.dtype):
            return torch.__dict__[name]
        qualname = f"{module}.{name}"
        if qualname.startswith(_STUBBED):
            if qualname not in self._stubs:
                self._stubs[qualname] = type(name, (Stub,), {"qualname": qualname})
            return self._stubs[qualname]
        raise RefusedGlobal(f"refused global '{qualname}' (only tensors, containers and Ultralytics/torch.nn "
                            f"module state are read)")


class _RestrictedPickle:
    """What torch.load needs of a `pickle_module`."""

    Unpickler = RestrictedUnpickler
    __name__ = "edgecnn_restricted_pickle"

    @staticmethod
    def load(file, **kwargs):
        return RestrictedUnpickler(file, **kwargs).load()

    @staticmethod
    def loads(data: bytes, **kwargs):
        return RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


def restricted_load(path: str | Path) -> Any:
    """torch.load through the restricted unpickler; nothing from the file is imported or called."""
    # torch.load hands a TorchScript archive to torch.jit.load, which runs the archive's own
    # __setstate__ code: refuse it before torch sees it (torch.load's own test: a constants.pkl record)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist()):
                raise RefusedGlobal("a TorchScript archive (its code would run on loading)")
    return torch.load(path, map_location="cpu", pickle_module=_RestrictedPickle, weights_only=False)


def stub_state_dict(module: Stub, prefix: str = "") -> dict[str, torch.Tensor]:
    """The state_dict of a recorded nn.Module: its parameters and persistent buffers, recursively."""
    out = {}
    skip = module.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (module.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor) and not (group == "_buffers" and name in skip):
                out[prefix + name] = tensor.detach()
    for name, child in (module.get("_modules") or {}).items():
        if isinstance(child, Stub):
            out.update(stub_state_dict(child, f"{prefix}{name}."))
    return out


def read_ultralytics(path: str | Path, reason: Exception | None = None) -> dict[str, Any]:
    """An Ultralytics detection .pt as an edgecnn checkpoint dict (format, model, state_dict, meta).

    A file that is not an Ultralytics checkpoint, another task, or an architecture we do not have
    is a ValueError saying what was found; `reason` is why it was not read as an edgecnn one.
    """
    path = Path(path)
    why = f" (as an edgecnn checkpoint: {reason})" if reason else ""
    try:
        ckpt = restricted_load(path)
    except RefusedGlobal as err:
        raise ValueError(f"{path}: not an edgecnn or Ultralytics checkpoint, nothing from it was run: {err}") from None
    except Exception as err:  # zip, EOF, pickle errors of a foreign or damaged file
        raise ValueError(f"{path}: not a readable checkpoint{why}: {type(err).__name__}: {err}") from None
    net = _ultralytics_model(ckpt)
    if net is None:
        found = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ValueError(f"{path}: neither an edgecnn nor an Ultralytics checkpoint (found {found}){why}")
    layers = (net.get("_modules") or {}).get("model")
    children = list((layers.get("_modules") or {}).values()) if isinstance(layers, Stub) else []
    head = type(children[-1]).__name__ if children else None
    task = TASK_HEADS.get(head, head)
    if task != "detect":
        raise ValueError(f"{path}: an Ultralytics {net.qualname} whose head is {head} (task {task}); "
                         f"edgecnn takes Ultralytics detection models (Detect head)")
    stored = stub_state_dict(net)
    state_dict = {k: v.float() if v.is_floating_point() else v for k, v in stored.items()}
    arch = _architecture(path, net, children, state_dict)
    names = _names(net, state_dict, arch["head"])
    train_args = ckpt.get("train_args") if isinstance(ckpt.get("train_args"), dict) else {}
    model_args = net.get("args") if isinstance(net.get("args"), dict) else {}
    imgsz = train_args.get("imgsz") or model_args.get("imgsz") or 640
    stride = net.get("stride")
    strides = [int(s) for s in stride.tolist()] if isinstance(stride, torch.Tensor) else [8, 16, 32]
    if strides != [8, 16, 32]:
        raise ValueError(f"{path}: strides {strides}; edgecnn's YOLOv8/YOLO11 models have strides 8, 16, 32")
    meta = {"task": "detect", "names": names, "imgsz": int(imgsz if isinstance(imgsz, int) else max(imgsz)),
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],  # Ultralytics feeds RGB / 255 as it is
            "strides": strides, "source": {"format": "ultralytics", "file": str(path), "class": net.qualname,
                                           "version": str(ckpt.get("version", "?")),
                                           "half": any(v.dtype == torch.float16 for v in stored.values())}}
    kwargs = {"num_classes": len(names), "in_channels": 3, "cls_width": arch["cls_width"], "reg_max": arch["reg_max"]}
    return {"format": "edgecnn-checkpoint/1", "model": {"name": arch["name"], "kwargs": kwargs},
            "state_dict": state_dict, "meta": meta}


def _ultralytics_model(ckpt: Any) -> Stub | None:
    """The model object of an Ultralytics checkpoint: the EMA when there is one, else `model`."""
    if not isinstance(ckpt, dict):
        return None
    for key in ("ema", "model"):
        net = ckpt.get(key)
        if isinstance(net, Stub) and net.qualname.startswith("ultralytics.") and isinstance(net.get("_modules"), dict):
            return net  # a recorded nn.Module of theirs (it has child modules)
    return None


def _architecture(path: Path, net: Stub, children: list[Stub], state_dict: dict) -> dict:
    """Which of our models these layers are (family from the layer classes, scale from the widths)."""
    layer_names = [type(c).__name__ for c in children]
    found = "-".join(layer_names) or "no layers"
    head = len(children) - 1
    for family, table in FAMILIES.items():
        if layer_names != [_THEIR_NAMES[kind] for _, _, kind, _ in table]:
            continue
        if f"model.{head}.one2one_cv2.0.0.conv.weight" in state_dict:
            raise ValueError(f"{path}: a {family} layout with an end-to-end (one-to-one) head, which edgecnn does not have")
        stem = state_dict["model.0.conv.weight"].shape[0]
        for scale, (_, width, _) in SCALES[family].items():
            if stem == round(64 * width):
                cls_width = state_dict[f"model.{head}.cv3.0.2.weight"].shape[1]
                reg_max = state_dict[f"model.{head}.dfl.conv.weight"].shape[1]
                return {"name": f"{family}{scale}", "cls_width": int(cls_width), "reg_max": int(reg_max), "head": head}
        yaml = net.get("yaml") if isinstance(net.get("yaml"), dict) else {}
        raise ValueError(f"{path}: a {family} of scale '{yaml.get('scale', '?')}' (stem width {stem}); "
                         f"edgecnn has {', '.join(family + s for s in SCALES[family])}")
    raise ValueError(f"{path}: an Ultralytics {net.qualname} with layers {found}: not an architecture edgecnn has "
                     f"(yolov8n/s, yolo11n/s)")


def _names(net: Stub, state_dict: dict, head: int) -> list[str]:
    nc = state_dict[f"model.{head}.cv3.0.2.weight"].shape[0]
    names = net.get("names")
    if isinstance(names, dict) and sorted(names) == list(range(nc)):
        return [str(names[i]) for i in range(nc)]
    if isinstance(names, (list, tuple)) and len(names) == nc:
        return [str(n) for n in names]
    return [f"class{i}" for i in range(nc)]
