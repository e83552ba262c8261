from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import load_backend
from dnhcli.errors import InputError, ModelError
from dnhcli.index.codes import codes_from_continuous, hamming_distances
from dnhcli.index.rerank import quantize_vectors, two_stage_arrays
from dnhcli.retrieval.hashing import HashConfig, hash_into_db
from dnhcli.retrieval.montage import TILE, write_montage
from dnhcli.retrieval.query import SearchConfig, search
from dnhcli.stores.hashdb import HashDB


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_hash_a_split_then_append_files(synthetic_dataset: Path, trained_model: Path,
                                        tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    first = hash_into_db(HashConfig(model=trained_model, db=db_path, data=synthetic_dataset,
                                    split="gallery", chunk=17))
    gallery = PreparedDataset.open(synthetic_dataset).split("gallery")
    assert first.created and first.added == first.count == len(gallery) and first.bits == 16
    np.save(tmp_path / "q.npy", np.asarray(gallery.images[:3]))
    second = hash_into_db(HashConfig(model=trained_model, db=db_path, inputs=(tmp_path / "q.npy",)))
    assert not second.created and second.added == 3 and second.count == len(gallery) + 3
    with HashDB.open(db_path) as db:
        meta = db.metadata(np.array([0, len(gallery)]))
    assert meta[0]["split"] == "gallery" and meta[0]["organ"] in ("Brain", "Lung", "Cell")
    assert meta[1]["source"].endswith("q.npy[0]")


def test_search_equals_brute_force_and_montage(synthetic_dataset: Path, trained_model: Path,
                                               tmp_path: Path) -> None:
    db_path = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db_path, data=synthetic_dataset))
    ds = PreparedDataset.open(synthetic_dataset)
    queries = np.asarray(ds.split("query").images[:4])
    np.save(tmp_path / "queries.npy", queries)
    result = search(SearchConfig(model=trained_model, db=db_path,
                                 queries=(tmp_path / "queries.npy",), k=5, rerank=False))
    backend = load_backend(trained_model)
    q_codes = codes_from_continuous(backend.encode(queries))
    g_codes = codes_from_continuous(backend.encode(np.asarray(ds.split("gallery").images)))
    dist = hamming_distances(q_codes, g_codes)
    order = np.argsort(dist, axis=1, kind="stable")[:, :5]
    for q, query in enumerate(result.queries):
        assert [hit["id"] for hit in query.results] == order[q].tolist()
        assert [hit["distance"] for hit in query.results] == dist[q, order[q]].tolist()
        assert [hit["rank"] for hit in query.results] == [1, 2, 3, 4, 5]
        assert all(hit["organ"] and hit["disease"] for hit in query.results)
        assert all(hit["score"] is None for hit in query.results)
    # two-stage (the default): the same answer as the in-memory two-stage search
    h_gallery = backend.encode(np.asarray(ds.split("gallery").images))
    two = search(SearchConfig(model=trained_model, db=db_path, queries=(tmp_path / "queries.npy",), k=5))
    assert two.rerank and two.to_json()["rerank"] is True
    want_d, want_s, want_i = two_stage_arrays(q_codes, backend.encode(queries), g_codes,
                                              quantize_vectors(h_gallery), 5)
    for q, query in enumerate(two.queries):
        assert [hit["id"] for hit in query.results] == want_i[q].tolist()
        assert [hit["distance"] for hit in query.results] == want_d[q].tolist()
        assert np.allclose([hit["score"] for hit in query.results], want_s[q], atol=1e-5)
    radius = search(SearchConfig(model=trained_model, db=db_path,
                                 queries=(tmp_path / "queries.npy",), k=10_000, radius=2))
    for q, query in enumerate(radius.queries):
        assert [hit["id"] for hit in query.results] == [
            i for i in np.argsort(dist[q], kind="stable") if dist[q, i] <= 2]
    h = backend.encode(queries)
    gallery_bits = np.unpackbits(g_codes, axis=1).astype(bool)
    for k, radius_cut in ((5, None), (10_000, 2)):
        asym = search(SearchConfig(model=trained_model, db=db_path, queries=(tmp_path / "queries.npy",),
                                   k=k, radius=radius_cut, tie_break="asymmetric", rerank=False))
        assert asym.to_json()["tie_break"] == "asymmetric"
        for q, query in enumerate(asym.queries):
            weight = ((gallery_bits != (h[q] > 0)) * np.abs(h[q])).sum(axis=1)
            expected = np.lexsort((np.arange(len(g_codes)), weight, dist[q]))
            if radius_cut is not None:
                expected = [i for i in expected if dist[q, i] <= radius_cut]
            assert [hit["id"] for hit in query.results] == list(expected[:k])
            assert [hit["distance"] for hit in query.results] == dist[q, expected[:k]].tolist()
    with pytest.raises(InputError):
        search(SearchConfig(model=trained_model, db=db_path, queries=(tmp_path / "queries.npy",),
                            tie_break="random"))
    out = write_montage(result, tmp_path / "m.png")
    with Image.open(out) as picture:
        assert picture.width > 6 * TILE and picture.height > 4 * TILE


def test_another_model_or_bad_input_changes_nothing(synthetic_dataset: Path, trained_model: Path,
                                                    tmp_path: Path) -> None:
    from dnhcli.training.trainer import Hyperparams, TrainConfig, train

    db_path = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db_path, data=synthetic_dataset, split="query"))
    before = _snapshot(db_path)
    other = train(TrainConfig(data=synthetic_dataset, out=tmp_path / "other", threads=1,
                              hparams=Hyperparams(epochs=1, batch_size=64, bits=32))).last
    with pytest.raises(ModelError, match="32") as err:
        hash_into_db(HashConfig(model=other, db=db_path, data=synthetic_dataset, split="query"))
    assert "16" in str(err.value)
    np.save(tmp_path / "good.npy", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(ModelError, match="32"):
        search(SearchConfig(model=other, db=db_path, queries=(tmp_path / "good.npy",)))
    np.save(tmp_path / "bad.npy", np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(InputError, match="bad.npy"):
        hash_into_db(HashConfig(model=trained_model, db=db_path,
                                inputs=(tmp_path / "good.npy", tmp_path / "bad.npy")))
    with pytest.raises(InputError, match="not both"):
        hash_into_db(HashConfig(model=trained_model, db=db_path, inputs=(tmp_path / "good.npy",),
                                data=synthetic_dataset))
    assert _snapshot(db_path) == before
    with pytest.raises(InputError, match="bad.npy"):
        hash_into_db(HashConfig(model=trained_model, db=tmp_path / "new",
                                inputs=(tmp_path / "bad.npy",)))
    assert not (tmp_path / "new").exists()
    with pytest.raises(ModelError, match="not found"):
        hash_into_db(HashConfig(model=tmp_path / "none.pt", db=db_path, data=synthetic_dataset))
