#!/usr/bin/env python3
"""Read PyTorch checkpoint files (.pth/.pt) into NumPy arrays WITHOUT torch.

Supports both serialisations written by ``torch.save``:

* the LEGACY (non-zip) format (torch < 1.6, or ``_use_new_zipfile_serialization=False``):
  a stream of pickles -- magic number, protocol version, sys_info, the object
  pickle (tensors refer to storages by persistent id), the list of storage keys
  in write order -- followed by each storage's raw bytes, each preceded by an
  int64 element count.
* the ZIP format (torch >= 1.6): ``<archive>/data.pkl`` (the object pickle) and
  ``<archive>/data/<key>`` (the raw bytes of each storage).

A custom ``pickle.Unpickler`` maps torch's classes to small stand-ins:
storages become NumPy 1-D arrays, ``torch._utils._rebuild_tensor_v2`` (and
friends) becomes an ``np.lib.stride_tricks.as_strided`` view copied out into
a regular C-contiguous array.  Nothing from torch is imported or executed;
any other global in the pickle is refused (``find_class`` whitelist), so
loading a file cannot run arbitrary code.

Usage:
    from pth_reader import load_pth
    state = load_pth("model.pth")      # dict name -> np.ndarray (OrderedDict)
    python3 tools/model/pth_reader.py model.pth   # lists tensors
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import zipfile

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001

# torch storage class name -> numpy dtype (little-endian)
_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": None,  # handled specially (no numpy bfloat16)
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

_TORCH_DTYPES = {  # torch.<dtype> globals (used with UntypedStorage in newer files)
    "float64": np.dtype("<f8"), "double": np.dtype("<f8"),
    "float32": np.dtype("<f4"), "float": np.dtype("<f4"),
    "float16": np.dtype("<f2"), "half": np.dtype("<f2"),
    "int64": np.dtype("<i8"), "long": np.dtype("<i8"),
    "int32": np.dtype("<i4"), "int": np.dtype("<i4"),
    "int16": np.dtype("<i2"), "short": np.dtype("<i2"),
    "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "bool": np.dtype("?"),
    "bfloat16": "bfloat16",
}


class _StorageType:
    """Stand-in for torch.FloatStorage etc.: only remembers the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name] if name != "BFloat16Storage" else "bfloat16"

    def __repr__(self):
        return f"<storage type {self.name}>"


class _DType:
    def __init__(self, name):
        self.name = name
        self.dtype = _TORCH_DTYPES[name]


def _bytes_to_array(raw: bytes, dtype) -> np.ndarray:
    if isinstance(dtype, str) and dtype == "bfloat16":
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u16.view("<f4").copy()
    return np.frombuffer(raw, dtype=dtype).copy()


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2): a strided view of a storage."""
    arr = storage
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    if len(size) == 0:
        return np.array(arr[storage_offset])
    itemsize = arr.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        arr[storage_offset:],
        shape=size,
        strides=tuple(s * itemsize for s in stride),
        writeable=False,
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data, requires_grad, backward_hooks, *_ignored):
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    return data


class _UntypedStorageType:  # torch.storage.UntypedStorage (zip, torch >= 2)
    dtype = np.dtype("u1")


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "UntypedStorage"): _UntypedStorageType,
    ("torch", "UntypedStorage"): _UntypedStorageType,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
}


class _Unpickler(pickle.Unpickler):
    """Unpickler that resolves torch globals to NumPy stand-ins.

    ``load_storage(storage_type, key, location, numel, dtype)`` is called the
    first time a storage key is seen; later references share the array.
    """

    def __init__(self, fileobj, load_storage):
        super().__init__(fileobj)
        self._load_storage = load_storage
        self._cache = {}
        self.keys_in_order = []

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(name)
        raise pickle.UnpicklingError(f"pth_reader: refusing global {module}.{name}")

    def persistent_load(self, pid):
        # pid = ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"pth_reader: unknown persistent id {pid!r}")
        storage_type, key, location, numel = pid[1], str(pid[2]), pid[3], int(pid[4])
        view_metadata = pid[5] if len(pid) > 5 else None
        if key not in self._cache:
            self._cache[key] = self._load_storage(storage_type, key, location, numel)
            self.keys_in_order.append(key)
        arr = self._cache[key]
        if view_metadata is not None:  # legacy storage views: (view_key, offset, view_size)
            view_key, offset, view_size = view_metadata
            view_key = str(view_key)
            if view_key not in self._cache:
                self._cache[view_key] = arr[int(offset):int(offset) + int(view_size)]
            return self._cache[view_key]
        return arr


def _load_legacy(f) -> object:
    magic = pickle.load(f)
    if magic != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch file (bad magic number)")
    version = pickle.load(f)
    if version != LEGACY_PROTOCOL_VERSION:
        raise ValueError(f"unsupported legacy protocol version {version}")
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian legacy files are not supported")

    # The object pickle comes first but the storage bytes come after the key
    # list, so record each storage's dtype/numel now and fill the data later.
    pending = {}

    def load_storage(storage_type, key, location, numel):
        dtype = getattr(storage_type, "dtype", None)
        if dtype is None:
            raise pickle.UnpicklingError(f"unknown storage type {storage_type!r}")
        placeholder = _Placeholder(key, dtype, numel)
        pending[key] = placeholder
        return placeholder

    up = _LegacyUnpickler(f, load_storage)
    result = up.load()
    keys = pickle.load(f)  # deserialized_storage_keys, in write order
    for key in keys:
        ph = pending[str(key)]
        (n,) = struct.unpack("<q", f.read(8))
        nbytes = n * (2 if isinstance(ph.dtype, str) else ph.dtype.itemsize)
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"truncated storage {key}: wanted {nbytes} bytes, got {len(raw)}")
        ph.array = _bytes_to_array(raw, ph.dtype)
    return _resolve(result)


class _Placeholder:
    """A legacy storage whose bytes have not been read yet."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel, self.array = key, dtype, numel, None


class _PendingTensor:
    def __init__(self, storage, args):
        self.storage, self.args = storage, args


class _LegacyUnpickler(_Unpickler):
    """Legacy files: tensors must be rebuilt after the storages are read."""

    def find_class(self, module, name):
        obj = super().find_class(module, name)
        if obj is _rebuild_tensor:
            return lambda storage, *args: _PendingTensor(storage, args)
        return obj

    def persistent_load(self, pid):
        if len(pid) > 5 and pid[5] is not None:
            base = super().persistent_load(pid[:5])
            view_key, offset, view_size = pid[5]
            return _PendingView(base, int(offset), int(view_size))
        return super().persistent_load(pid)


class _PendingView:
    def __init__(self, base, offset, size):
        self.base, self.offset, self.size = base, offset, size


def _resolve(obj):
    if isinstance(obj, _PendingTensor):
        st = obj.storage
        if isinstance(st, _PendingView):
            arr = st.base.array[st.offset:st.offset + st.size]
        else:
            arr = st.array
        return _rebuild_tensor(arr, *obj.args)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _resolve(v)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


def _load_zip(path) -> object:
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError(f"zip checkpoint: expected one data.pkl, found {pkl}")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()
        if byteorder != "little":
            raise ValueError("big-endian zip checkpoints are not supported")

        def load_storage(storage_type, key, location, numel):
            raw = zf.read(f"{prefix}data/{key}")
            dtype = getattr(storage_type, "dtype", None)
            if dtype is None:
                raise pickle.UnpicklingError(f"unknown storage type {storage_type!r}")
            return _bytes_to_array(raw, dtype)

        up = _ZipUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage)
        return up.load()


class _ZipUnpickler(_Unpickler):
    def find_class(self, module, name):
        obj = super().find_class(module, name)
        if obj is _rebuild_tensor:
            return _rebuild_tensor_zip
        return obj


def _rebuild_tensor_zip(storage, storage_offset, size, stride, *rest):
    return _rebuild_tensor(storage, storage_offset, size, stride)


def load_pth(path):
    """Load a PyTorch checkpoint (legacy or zip) as nested Python objects with
    every tensor replaced by a C-contiguous NumPy array."""
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as f:
        return _load_legacy(f)


def file_format(path) -> str:
    return "zip" if zipfile.is_zipfile(path) else "legacy"


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} FILE.pth", file=sys.stderr)
        return 2
    obj = load_pth(argv[1])
    print(f"format: {file_format(argv[1])}")
    if isinstance(obj, dict):
        total = 0
        for k, v in obj.items():
            if isinstance(v, np.ndarray):
                total += v.size
                print(f"{k:60s} {str(v.dtype):8s} {tuple(v.shape)}")
            else:
                print(f"{k:60s} {type(v).__name__} {v!r}")
        print(f"{len(obj)} entries, {total} tensor elements")
    else:
        print(repr(obj)[:2000])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
