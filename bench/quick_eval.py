"""Scratch: retrieval quality of a checkpoint, query split vs gallery split (Hamming on sign
bits, ties by gallery order). Usage: quick_eval.py CKPT [DATA] [--json]"""

from __future__ import annotations

import json
import sys

import numpy as np

from dnhcli.core.backends import load_backend
from dnhcli.core.codes import codes_from_continuous, distinct_codes
from dnhcli.core.dataset import PreparedDataset
from dnhcli.core.metrics import average_precision_at_k
from dnhcli.core.search import topk


def ndcg_at_k(ranked: np.ndarray, q: np.ndarray, g: np.ndarray, k: int) -> float:
    """Standard nDCG@k: grade 2 same class, 1 same organ; ideal DCG from the whole gallery."""
    grade = np.where(g[ranked, 0] == q[:, None, 0], 2, np.where(g[ranked, 1] == q[:, None, 1], 1, 0))
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = ((2.0 ** grade - 1) * disc).sum(1)
    n2 = (g[None, :, 0] == q[:, None, 0]).sum(1)
    n1 = (g[None, :, 1] == q[:, None, 1]).sum(1) - n2
    ideal = np.zeros(len(q))
    for i in range(len(q)):
        gains = np.array([3.0] * min(n2[i], k) + [1.0] * max(0, min(n1[i], k - min(n2[i], k))))
        gains = np.pad(gains, (0, k - len(gains)))
        ideal[i] = (gains * disc).sum()
    return float(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0).mean())


def evaluate(ckpt: str, data: str = "/tmp/real1") -> dict:
    ds = PreparedDataset.open(data)
    qs, gs = ds.split("query"), ds.split("gallery")
    be = load_backend(ckpt)
    qc = codes_from_continuous(be.encode(np.asarray(qs.images)))
    gc = codes_from_continuous(be.encode(np.asarray(gs.images)))
    ql, gl = np.asarray(qs.labels), np.asarray(gs.labels)  # columns class, organ, disease
    _, ranked = topk(qc, gc, 100)
    organ_rel = gl[ranked, 1] == ql[:, None, 1]
    strict = gl[ranked, 0] == ql[:, None, 0]  # class = (organ, disease)
    out = {"epoch": be.info.get("epoch"),
           "organ_map10": float(average_precision_at_k(organ_rel[:, :10]).mean()),
           "strict_map10": float(average_precision_at_k(strict[:, :10]).mean()),
           "strict_map100": float(average_precision_at_k(strict).mean()),
           "ndcg10": ndcg_at_k(ranked[:, :10], ql, gl, 10),
           "p10": float(strict[:, :10].mean())}
    for o, name in enumerate(ds.organ_names):
        out[f"p10_{name}"] = float(strict[ql[:, 1] == o, :10].mean())
    out["distinct_gallery"] = distinct_codes(gc)
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    res = evaluate(*args)
    if "--json" in sys.argv:
        print(json.dumps(res))
    else:
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in res.items()))
