"""dnh: content-based medical image retrieval with deep neural hashing.

The public Python API is the names below, loaded on first use so that `import dnhcli` stays
cheap (no torch, OpenVINO or numba until a name that needs them is touched):

    from dnhcli import HashDB, create_model, evaluate_codes, load_backend

The library is split by service, lowest layer first: `errors`, `manifest`, `progress` and
`folders` (primitives); `data` and `index`; `models`; `deploy`; `evaluation` and `retrieval`;
`training`; `bench`; `serve` (the HTTP service); and `cli` on top, the only place that
imports typer or rich.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "DnhError": "dnhcli.errors",
    "InputError": "dnhcli.errors",
    "DataError": "dnhcli.errors",
    "ModelError": "dnhcli.errors",
    "PreparedDataset": "dnhcli.data.dataset",
    "PrepareConfig": "dnhcli.data.prepare",
    "prepare_dataset": "dnhcli.data.prepare",
    "HashDB": "dnhcli.stores.hashdb",
    "PostgresStore": "dnhcli.stores.postgres",
    "open_store": "dnhcli.stores",
    "create_store": "dnhcli.stores",
    "pack_codes": "dnhcli.index.codes",
    "unpack_codes": "dnhcli.index.codes",
    "hamming_distances": "dnhcli.index.codes",
    "create_model": "dnhcli.models.registry",
    "list_models": "dnhcli.models.registry",
    "model_defaults": "dnhcli.models.registry",
    "load_checkpoint": "dnhcli.models.checkpoint",
    "load_backend": "dnhcli.deploy.backends",
    "ExportConfig": "dnhcli.deploy.export",
    "export_model": "dnhcli.deploy.export",
    "evaluate_codes": "dnhcli.evaluation.protocol",
    "EvalConfig": "dnhcli.evaluation.evaluate",
    "evaluate": "dnhcli.evaluation.evaluate",
    "HashConfig": "dnhcli.retrieval.hashing",
    "hash_into_db": "dnhcli.retrieval.hashing",
    "SearchConfig": "dnhcli.retrieval.query",
    "search": "dnhcli.retrieval.query",
    "Hyperparams": "dnhcli.training.config",
    "TrainConfig": "dnhcli.training.config",
    "preset": "dnhcli.training.config",
    "train": "dnhcli.training.trainer",
    "ServeConfig": "dnhcli.serve.service",
    "SearchService": "dnhcli.serve.service",
    "create_app": "dnhcli.serve.app",
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # the same names, for type checkers
    from dnhcli.data.dataset import PreparedDataset as PreparedDataset
    from dnhcli.data.prepare import PrepareConfig as PrepareConfig
    from dnhcli.data.prepare import prepare_dataset as prepare_dataset
    from dnhcli.deploy.backends import load_backend as load_backend
    from dnhcli.deploy.export import ExportConfig as ExportConfig
    from dnhcli.deploy.export import export_model as export_model
    from dnhcli.errors import DataError as DataError
    from dnhcli.errors import DnhError as DnhError
    from dnhcli.errors import InputError as InputError
    from dnhcli.errors import ModelError as ModelError
    from dnhcli.evaluation.evaluate import EvalConfig as EvalConfig
    from dnhcli.evaluation.evaluate import evaluate as evaluate
    from dnhcli.evaluation.protocol import evaluate_codes as evaluate_codes
    from dnhcli.index.codes import hamming_distances as hamming_distances
    from dnhcli.index.codes import pack_codes as pack_codes
    from dnhcli.index.codes import unpack_codes as unpack_codes
    from dnhcli.models.checkpoint import load_checkpoint as load_checkpoint
    from dnhcli.models.registry import create_model as create_model
    from dnhcli.models.registry import list_models as list_models
    from dnhcli.models.registry import model_defaults as model_defaults
    from dnhcli.retrieval.hashing import HashConfig as HashConfig
    from dnhcli.retrieval.hashing import hash_into_db as hash_into_db
    from dnhcli.retrieval.query import SearchConfig as SearchConfig
    from dnhcli.retrieval.query import search as search
    from dnhcli.serve.app import create_app as create_app
    from dnhcli.serve.service import SearchService as SearchService
    from dnhcli.serve.service import ServeConfig as ServeConfig
    from dnhcli.stores import create_store as create_store
    from dnhcli.stores import open_store as open_store
    from dnhcli.stores.hashdb import HashDB as HashDB
    from dnhcli.stores.postgres import PostgresStore as PostgresStore
    from dnhcli.training.config import Hyperparams as Hyperparams
    from dnhcli.training.config import TrainConfig as TrainConfig
    from dnhcli.training.config import preset as preset
    from dnhcli.training.trainer import train as train


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'dnhcli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
