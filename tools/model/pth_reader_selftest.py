#!/usr/bin/env python3
"""Self-test of tools/model/pth_reader.py's ZIP path on a synthetic checkpoint.

No zip-format PyTorch file is available here without torch, so this writes
one in torch's zip layout (archive/data.pkl with ('storage', FloatStorage,
key, 'cpu', numel) persistent ids and torch._utils._rebuild_tensor_v2 calls,
archive/data/<key>, archive/byteorder, archive/version) using stand-in
'torch' modules that exist only while pickling, then reads it back:
contiguous, transposed (shared storage) and offset views, an int64 scalar.
The LEGACY path is exercised by the real EfficientNet-Lite0 .pth
(convert_efficientnet_lite0.py).  Usage: python3 tools/model/pth_reader_selftest.py
"""
import collections
import io
import os
import pickle
import sys
import tempfile
import types
import zipfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pth_reader  # noqa: E402


def write_synthetic(path):
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    class LongStorage:
        pass

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    FloatStorage.__module__ = LongStorage.__module__ = "torch"
    FloatStorage.__qualname__, LongStorage.__qualname__ = "FloatStorage", "LongStorage"
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    torch.FloatStorage, torch.LongStorage = FloatStorage, LongStorage
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Storage:
        def __init__(self, key, kind, numel):
            self.key, self.kind, self.numel = key, kind, numel

    class Tensor:
        def __init__(self, storage, offset, size, stride):
            self.args = (storage, offset, size, stride, False, collections.OrderedDict())

        def __reduce_ex__(self, protocol):
            return (_rebuild_tensor_v2, self.args)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                return ("storage", obj.kind, obj.key, "cpu", obj.numel)
            return None

    a = np.arange(24, dtype="<f4")
    b = np.array([7, -3], dtype="<i8")
    sa, sb = Storage("0", FloatStorage, 24), Storage("1", LongStorage, 2)
    obj = collections.OrderedDict([
        ("w", Tensor(sa, 0, (2, 3, 4), (12, 4, 1))),
        ("wt", Tensor(sa, 0, (4, 3, 2), (1, 4, 12))),
        ("tail", Tensor(sa, 20, (4,), (1,))),
        ("n", Tensor(sb, 1, (), ())),
    ])
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(obj)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/data/0", a.tobytes())
        z.writestr("archive/data/1", b.tobytes())
        z.writestr("archive/version", "3\n")
    return a, b


def main():
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic.pt")
        a, b = write_synthetic(path)
        assert pth_reader.file_format(path) == "zip"
        sd = pth_reader.load_pth(path)
    A = a.reshape(2, 3, 4)
    assert np.array_equal(sd["w"], A)
    assert np.array_equal(sd["wt"], A.transpose(2, 1, 0))
    assert np.array_equal(sd["tail"], a[20:])
    assert sd["n"] == -3 and sd["n"].dtype == np.int64 and sd["n"].shape == ()
    # a global outside the whitelist is refused
    evil = pickle.dumps(os.system)
    try:
        pth_reader._Unpickler(io.BytesIO(evil), None).load()
    except pickle.UnpicklingError:
        pass
    else:
        raise AssertionError("non-whitelisted global was accepted")
    print("pth_reader zip self-test: OK")


if __name__ == "__main__":
    main()
