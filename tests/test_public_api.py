"""The public Python API: `from dnhcli import HashDB` and the other root names, loaded lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import dnhcli


@pytest.mark.parametrize("name", sorted(set(dnhcli.__all__) - {"__version__"}))
def test_every_public_name_is_its_module_s_object(name: str) -> None:
    module = importlib.import_module(dnhcli._EXPORTS[name])
    assert getattr(dnhcli, name) is getattr(module, name)
    assert name in dir(dnhcli)


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'hashdb'"):
        dnhcli.hashdb  # noqa: B018


def test_importing_the_package_and_the_database_stays_light() -> None:
    code = ("import sys; from dnhcli import HashDB, __version__, DnhError; "
            "print(sorted({n.split('.')[0] for n in sys.modules} & "
            "{'torch', 'numba', 'openvino', 'onnxruntime', 'scipy', 'typer', 'rich'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_readme_example_runs(tmp_path) -> None:
    import numpy as np

    from dnhcli import HashDB

    db = HashDB.create(tmp_path / "db", bits=48)
    db.add(np.zeros((3, 6), np.uint8), metadata=[{"source": f"img{i}"} for i in range(3)])
    distances, ids = db.search(np.zeros((1, 6), np.uint8), k=10)
    assert ids.tolist() == [[0, 1, 2]] and distances.tolist() == [[0, 0, 0]]
