"""`evaluate` on a trained model: gallery split or database, dump files, plot, bad outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dnhcli.data.dataset import PreparedDataset
from dnhcli.deploy.backends import load_backend
from dnhcli.errors import DataError, InputError, ModelError, OutputExistsError
from dnhcli.evaluation.alterations import ALTERATION_NAMES
from dnhcli.evaluation.evaluate import EvalConfig, evaluate
from dnhcli.evaluation.protocol import evaluate_codes
from dnhcli.retrieval.hashing import HashConfig, hash_into_db
from dnhcli.stores.hashdb import HashDB


def test_dump_rechecks_the_figures_and_db_matches_split(synthetic_dataset: Path, trained_model: Path,
                                                         tmp_path: Path) -> None:
    dump, plot = tmp_path / "dump", tmp_path / "plots" / "eval.png"
    report = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, ks=(5, 50), dump=dump,
                                 plot=plot))
    dataset = PreparedDataset.open(synthetic_dataset)
    query, gallery = dataset.split("query"), dataset.split("gallery")
    arrays = {name: np.load(dump / f"{name}.npy", allow_pickle=False)
              for name in ("query_codes", "gallery_codes", "query_labels", "gallery_labels")}
    assert arrays["query_codes"].shape == (len(query), 2) and arrays["query_codes"].dtype == np.uint8
    assert arrays["gallery_codes"].shape == (len(gallery), 2)
    assert (arrays["query_labels"] == np.asarray(query.labels)[:, 1:3]).all()
    assert (arrays["gallery_labels"] == np.asarray(gallery.labels)[:, 1:3]).all()
    again = evaluate_codes(arrays["query_codes"], arrays["gallery_codes"], arrays["query_labels"],
                           arrays["gallery_labels"], (5, 50))
    assert again.to_json()["strict"] == report.to_json()["strict"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = report.to_json()["config"]
    assert config["model_trained_on_this_dataset"] is True and config["bits"] == 16
    assert (dump / "manifest.json").is_file()

    db = tmp_path / "db"
    hash_into_db(HashConfig(model=trained_model, db=db, data=synthetic_dataset, split="gallery"))
    via_db = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, db=db, ks=(5, 50)))
    assert via_db.to_json()["strict"] == report.to_json()["strict"]
    assert via_db.to_json()["reference"] == report.to_json()["reference"]
    for part in ("two_stage", "instance", "likeness_ratio"):  # the stored vectors give the same figures
        assert via_db.to_json()[part] == report.to_json()[part], part
    assert via_db.to_json()["config"]["db_vectors"] is True and via_db.notices == []
    with HashDB.open(db) as database:  # deleted items are not evaluated
        database.delete([0, 1, 2])
    fewer = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, db=db, ks=(5, 50)))
    assert fewer.to_json()["config"]["db_items"] == len(gallery) - 3
    assert fewer.instance is not None and fewer.instance["gallery"] == len(gallery) - 3


def test_two_stage_instance_and_likeness(synthetic_dataset: Path, trained_model: Path) -> None:
    report = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, ks=(5, 50), instance_sample=40))
    out = report.to_json()
    two = out["two_stage"]
    assert set(two) == {"reference", "strict", "tie_aware", "per_organ", "codes"}
    assert set(two["strict"]) == {f"{n}@{k}" for n in ("mAP", "nDCG", "P", "mMV") for k in (5, 50)}
    assert set(two["tie_aware"]["strict"]) == set(out["tie_aware"]["strict"])
    assert two["codes"]["oversample"] == 10 and set(two["per_organ"]) == set(out["per_organ"])
    instance = out["instance"]
    assert instance["sample"] == 40 and instance["alterations"] == list(ALTERATION_NAMES)
    for ranking in ("hamming", "two_stage"):
        assert set(instance[ranking]) == set(ALTERATION_NAMES)
        assert all(0 <= v["recall@1"] <= v["recall@10"] <= 1 for v in instance[ranking].values())
    assert instance["two_stage"]["exact"]["recall@1"] == 1.0  # its own vector scores highest
    like = out["likeness_ratio"]
    assert like["k"] == 10 and like["sample"] == min(40, out["config"]["queries"])
    assert like["hamming"]["ratio"] > 0
    assert like["two_stage"]["queries"] > 0
    assert out["codes"]["mean_gallery_tie_size"] >= 1.0
    assert {"rerank", "oversample", "instance", "instance_sample", "seed"} <= set(out["config"])

    plain = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, ks=(5, 50), rerank=False,
                                instance=False))
    assert plain.to_json()["strict"] == out["strict"]  # the Hamming figures do not change
    assert plain.two_stage is None and plain.instance is None
    assert plain.likeness is not None and plain.likeness["two_stage"] is None


def test_db_without_vectors_skips_two_stage(synthetic_dataset: Path, trained_model: Path,
                                            tmp_path: Path) -> None:
    new, old = tmp_path / "new", tmp_path / "old"
    hash_into_db(HashConfig(model=trained_model, db=new, data=synthetic_dataset, split="gallery"))
    with HashDB.open(new) as source:  # the same items, as a database written before re-rank vectors
        live, fingerprint = source.live_ids(), source.model_fingerprint
        codes, records = source.codes()[live], [{k: v for k, v in r.items() if k != "id"}
                                                for r in source.metadata(live)]
    with HashDB.create(old, bits=16, model_fingerprint=fingerprint) as db:
        db.add(codes, records)
    report = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, db=old, ks=(10,),
                                 instance_sample=20))
    assert report.two_stage is None and len(report.notices) == 1 and "re-rank vectors" in report.notices[0]
    assert report.instance is not None and report.instance["two_stage"] is None
    assert report.instance["hamming"]["exact"]["recall@10"] > 0


def test_asymmetric_tie_break_runs_on_a_model(synthetic_dataset: Path, trained_model: Path) -> None:
    report = evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, ks=(10,),
                                 tie_break="asymmetric"))
    figures = report.to_json()
    assert figures["config"]["tie_break"] == "asymmetric"
    assert 0.0 <= figures["strict"]["mAP@10"] <= 1.0


def test_outputs_are_checked_before_work(synthetic_dataset: Path, trained_model: Path,
                                         tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, dump=taken))
    with pytest.raises(OutputExistsError):  # --force replaces only a dnh dump
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, dump=taken, force=True))
    assert (taken / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, plot=tmp_path / "x.jpg"))
    with pytest.raises(InputError):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, tie_break="random"))
    with pytest.raises(InputError, match="--oversample"):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, oversample=0))
    with pytest.raises(InputError, match="--instance-sample"):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, instance_sample=-1))
    assert not (tmp_path / "x.jpg").exists()


def test_db_without_labels_or_from_another_model(synthetic_dataset: Path, trained_model: Path,
                                                 tmp_path: Path) -> None:
    backend = load_backend(trained_model)
    db = tmp_path / "db"
    with HashDB.create(db, bits=16, model_fingerprint=backend.fingerprint) as store:
        store.add(np.zeros((2, 2), np.uint8), [{"source": "a.png"}, {"source": "b.png"}])
    with pytest.raises(DataError, match="no organ/disease"):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, db=db))
    other = tmp_path / "other"
    HashDB.create(other, bits=16, model_fingerprint="0" * 64).close()
    with pytest.raises(ModelError):
        evaluate(EvalConfig(model=trained_model, data=synthetic_dataset, db=other))
