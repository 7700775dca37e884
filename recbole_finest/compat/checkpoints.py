"""The one checkpoint loader of the project: ``torch.load(weights_only=True)`` with an allow-list.

RecBole 1.2.1 pickles its ``Config`` into every checkpoint (``Trainer._save_checkpoint``),
which torch >= 2.6 refuses under its default ``weights_only=True``; loading with torch's
full unpickler instead runs any code a planted pickle names. :func:`safe_load`
keeps ``weights_only=True`` and allows exactly the classes RecBole's and the plugin's
checkpoints hold (:func:`allowed_globals`) plus the one model class a checkpoint's config
names, if it is a RecBole or plugin recommender (:func:`model_globals`). Anything else is
refused before unpickling, with an error naming the file and the refused names.

RecBole's own loaders (``Trainer.resume_checkpoint``, ``Trainer.evaluate(load_best_model=True)``,
``quick_start.load_data_and_model``) are routed here by :mod:`recbole_finest.compat.stack`.
"""
from __future__ import annotations

import importlib
import os
import pickle
import re

import torch

#: Modules whose recommender classes a checkpoint's config may name (``Config.model_class``).
MODEL_PACKAGES = ("recbole.model.", "recbole_finest.model.")


class UnreadableFileError(ValueError):
    """A file that exists but cannot be read back (truncated, corrupted, not of its format)."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint that names a Python object outside the allow-list (never unpickled)."""


def allowed_globals() -> list:
    """The classes (besides torch's own tensor types) that RecBole's and the plugin's checkpoints hold.

    RecBole's ``Config`` (the class, its ``yaml_loader`` ``yaml.FullLoader``, the enums of its
    ``final_config_dict``: ``ModelType``, ``InputType``, ``EvaluatorType``), the plugin's
    ``Config`` and its frozen settings (checkpoints written before configs were stored as
    RecBole's class), ``collections.OrderedDict`` and NumPy scalars / arrays of the plugin's
    stored states.
    """
    import collections

    import numpy as np
    import yaml
    from recbole.config import Config
    from recbole.utils.enum_type import EvaluatorType, InputType, ModelType

    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # NumPy 2 / 1
    scalars = [multiarray.scalar, np.dtype] + [type(np.dtype(t)) for t in ("float32", "float64", "int64", "bool")]
    return [Config, ModelType, InputType, EvaluatorType, yaml.FullLoader, collections.OrderedDict,
            *scalars, *_plugin_config_classes()]


def _plugin_config_classes():
    """The plugin's ``Config`` and the dataclasses of ``config.settings`` (``PluginSettings`` ...), if loaded.

    Taken from ``sys.modules`` (no import: ``compat`` sits below ``config`` and ``settings``).
    They are loaded wherever the plugin wrote such a checkpoint; a plain RecBole script
    opening one gets the refusal naming the class.
    """
    import dataclasses
    import sys

    classes = []
    config, settings = sys.modules.get("recbole_finest.config"), sys.modules.get("recbole_finest.settings")
    if config is not None:
        classes.append(config.Config)
    if settings is not None:
        classes.append(settings.FrozenMap)
        classes += [c for c in vars(settings).values() if isinstance(c, type) and dataclasses.is_dataclass(c)
                    and c.__module__ == settings.__name__]
    return classes


def model_globals(names) -> list:
    """The recommender classes among the pickle's global ``names`` (``Config.model_class``).

    Only names under :data:`MODEL_PACKAGES` that resolve to a subclass of RecBole's
    ``AbstractRecommender`` are returned; anything else stays refused.
    """
    from recbole.model.abstract_recommender import AbstractRecommender

    found = []
    for name in names:
        module, _, attr = name.rpartition(".")
        if not (module + ".").startswith(MODEL_PACKAGES):
            continue
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        if isinstance(obj, type) and issubclass(obj, AbstractRecommender):
            found.append(obj)
    return found


# ------------------------------------------------------------------ pickle protocol 4 -> 2
def protocol2(data: bytes) -> bytes:
    """A protocol 2 pickle equal to the protocol 3 / 4 pickle ``data``, built without unpickling.

    RecBole saves checkpoints with ``pickle_protocol=4``, and torch's weights-only unpickler
    reads protocol 2 opcodes only. The rewrite is opcode for opcode: ``FRAME`` dropped,
    ``SHORT_BINUNICODE`` / ``BINUNICODE8`` -> ``BINUNICODE``, bytes -> ``_codecs.encode(str, "latin1")``
    (as protocol 2 writes them), ``MEMOIZE`` -> ``BINPUT`` /
    ``LONG_BINPUT`` with the index the unpickler would give, ``STACK_GLOBAL`` with its two
    string arguments -> ``GLOBAL "module\\nname"`` (a memoized string read again is written
    as a literal). Everything else is copied; an opcode torch does not know stays and is
    refused there.
    """
    import pickletools
    import struct

    out = []          # [kind, payload]: kind "raw" (bytes) or "str" (value, memo index or None)
    memo_strings = {}
    memo_len = 0

    def unicode(value):
        raw = value.encode("utf-8", "surrogatepass")
        return b"X" + struct.pack("<I", len(raw)) + raw

    def put(index):
        return b"q" + bytes([index]) if index < 256 else b"r" + struct.pack("<I", index)

    ops = list(pickletools.genops(data))
    for i, (op, arg, pos) in enumerate(ops):
        end = ops[i + 1][2] if i + 1 < len(ops) else len(data)
        name = op.name
        if name == "PROTO":
            out.append(["raw", b"\x80\x02"])
        elif name == "FRAME":
            continue
        elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
            out.append(["str", [arg, None]])
        elif name == "MEMOIZE":
            if out and out[-1][0] == "str" and out[-1][1][1] is None:
                out[-1][1][1] = memo_len
                memo_strings[memo_len] = out[-1][1][0]
            else:
                out.append(["raw", put(memo_len)])
            memo_len += 1
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            if out and out[-1][0] == "str" and out[-1][1][1] is None:
                out[-1][1][1] = arg
                memo_strings[arg] = out[-1][1][0]
            else:
                out.append(["raw", data[pos:end]])
            memo_len = max(memo_len, arg + 1)
        elif name in ("BINGET", "LONG_BINGET", "GET") and arg in memo_strings:
            out.append(["str", [memo_strings[arg], None]])
        elif name in ("SHORT_BINBYTES", "BINBYTES", "BINBYTES8"):  # protocol 2's bytes: _codecs.encode(str, latin1)
            out.append(["raw", b"c_codecs\nencode\n" + unicode(arg.decode("latin1")) + unicode("latin1") + b"\x86R"])
        elif name == "STACK_GLOBAL":
            if len(out) < 2 or out[-1][0] != "str" or out[-2][0] != "str":
                raise pickle.UnpicklingError("STACK_GLOBAL without two string arguments")
            qualname, module = out.pop()[1][0], out.pop()[1][0]
            out.append(["raw", b"c" + f"{module}\n{qualname}\n".encode("utf-8")])
        else:
            out.append(["raw", data[pos:end]])
    chunks = []
    for kind, payload in out:
        if kind == "raw":
            chunks.append(payload)
        else:
            value, index = payload
            chunks.append(unicode(value) + (put(index) if index is not None else b""))
    return b"".join(chunks)


def _pickle_globals(data: bytes) -> list:
    """``module.name`` of every ``GLOBAL`` opcode of the protocol 2 pickle ``data``."""
    import pickletools

    return [arg.replace(" ", ".") for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"]


def _readable(path):
    """``(file for torch.load, globals named)``: the checkpoint with its pickle as protocol 2."""
    import io
    import zipfile

    if not zipfile.is_zipfile(path):
        return path, []
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            return path, []
        data = archive.read(pkl[0])
        if data[:2] == b"\x80\x02":
            return path, _pickle_globals(data)
        data = protocol2(data)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as copy:
            for name in names:
                copy.writestr(archive.getinfo(name), data if name == pkl[0] else archive.read(name))
    buffer.seek(0)
    return buffer, _pickle_globals(data)


def safe_load(path, map_location=None):
    """``torch.load(path, map_location, weights_only=True)`` with RecBole's and the plugin's classes allowed.

    A RecBole checkpoint's protocol 4 pickle is rewritten as protocol 2 first
    (:func:`protocol2`, in memory): torch's weights-only unpickler reads protocol 2 only.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        UnsafeCheckpointError: the pickle names an object outside the allow-list (nothing of
            it is executed); the message names the file and the object.
        UnreadableFileError: a truncated or corrupted file, or not a torch checkpoint.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if not hasattr(torch.serialization, "safe_globals"):
        raise RuntimeError(f"loading checkpoint {path} safely needs torch >= 2.5 (torch.serialization.safe_globals); "
                           f"this is torch {torch.__version__}")
    try:
        source, names = _readable(path)
    except Exception as exc:  # a zip or pickle stream that does not parse
        raise UnreadableFileError(_unreadable(path, exc)) from None
    allowed = allowed_globals() + model_globals(names)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(source, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc) and "Unsupported global" in str(exc):
            found = re.findall(r"GLOBAL (\S+) was not an allowed global", str(exc))
            raise UnsafeCheckpointError(_refusal(path, found or ["an object torch does not allow"])) from None
        raise UnreadableFileError(_unreadable(path, exc)) from None
    except Exception as exc:  # truncated zip, bad pickle, EOF: torch raises any of these
        raise UnreadableFileError(_unreadable(path, exc)) from None


def _refusal(path, names):
    return (f"checkpoint file {path} was not loaded: it names {', '.join(names)}, outside the allow-list of "
            f"RecBole's and recbole-finest's checkpoints (a checkpoint that could run code when opened is never "
            f"unpickled). If you trust the file and it holds your own model class, "
            f"allow that class with torch.serialization.add_safe_globals([...]) first")


def _unreadable(path, exc):
    return (f"checkpoint file {path} cannot be read (truncated or not a torch checkpoint): "
            f"{type(exc).__name__}: {exc}")
