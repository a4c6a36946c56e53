"""Peer MinHash deduplicators on our keys, one method per process (bench/dedup.py rows).

    python bench/peers.py METHOD KEYS_JSON OUT_NPY

Reads comparison keys (a JSON list), runs METHOD over all of them in input order (a key
is dropped when the index of earlier KEPT keys holds a match), saves the keep mask and
prints one JSON line: wall and CPU seconds and this process's peak RSS.

Settings are each library's documented defaults for Chinese text, as in their READMEs:
- ``rensa``: ``RMinHash`` over 3-character shingles, 128 permutations, seed 42;
  ``RMinHashLSH(threshold=0.7, num_perm=128, num_bands=16)``; a query hit counts when
  the estimated Jaccard reaches 0.7.
- ``datasketch``: ``MinHash(num_perm=128)`` over the UTF-8 bytes of 3-character
  shingles; ``MinHashLSH(threshold=0.7, num_perm=128)`` (its own band choice); a hit
  counts when the estimated Jaccard reaches 0.7.
- ``data_juicer`` (in its own venv: it pins its own numpy, pandas and torch):
  ``DocumentMinhashDeduplicator(tokenization="character", window_size=5,
  num_permutations=256, jaccard_threshold=0.7)``, bands chosen by data-juicer; it keeps
  one record of each cluster (union-find), not the earliest kept in greedy order.
- ``ours``: :func:`belle_kedro.pipelines.clean.dedup.find_near_duplicates` with
  conf/base's ``clean.matching`` (ROUGE-L >= 0.7, every drop verified exactly).
A key shorter than 3 characters is one shingle (itself).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

THRESHOLD = 0.7
PERMUTATIONS = 128
SHINGLE = 3


def shingles(key: str) -> list[str]:
    """The key's distinct 3-character shingles (the key itself when shorter)."""
    if len(key) <= SHINGLE:
        return [key]
    return list({key[at : at + SHINGLE] for at in range(len(key) - SHINGLE + 1)})


def _greedy(keys: list[str], signature_of: Any, index: Any) -> np.ndarray:
    """Drop a key when an earlier KEPT key's signature is a hit (LSH, then Jaccard)."""
    signatures: dict[int, Any] = {}
    keep = np.ones(len(keys), dtype=bool)
    for position, key in enumerate(keys):
        if not key:
            continue
        signature = signature_of(key)
        if any(
            signature.jaccard(signatures[other]) >= THRESHOLD
            for other in index.query(signature)
        ):
            keep[position] = False
            continue
        index.insert(position, signature)
        signatures[position] = signature
    return keep


def rensa_keep(keys: list[str]) -> np.ndarray:
    import rensa

    def signature_of(key: str) -> rensa.RMinHash:
        signature = rensa.RMinHash(PERMUTATIONS, 42)
        signature.update(shingles(key))
        return signature

    return _greedy(keys, signature_of, rensa.RMinHashLSH(THRESHOLD, PERMUTATIONS, 16))


def datasketch_keep(keys: list[str]) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    def signature_of(key: str) -> MinHash:
        signature = MinHash(num_perm=PERMUTATIONS)
        signature.update_batch([shingle.encode("utf-8") for shingle in shingles(key)])
        return signature

    return _greedy(
        keys, signature_of, MinHashLSH(threshold=THRESHOLD, num_perm=PERMUTATIONS)
    )


def ours_keep(keys: list[str]) -> np.ndarray:
    import yaml

    from belle_kedro.common.config import build
    from belle_kedro.pipelines.clean.dedup import find_near_duplicates
    from belle_kedro.pipelines.clean.settings import MinHashSettings

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "conf/base/parameters_clean.yml").read_text())
    minhash = build(
        MinHashSettings,
        params["clean"]["matching"]["minhash"],
        "clean.matching.minhash",
    )
    return find_near_duplicates(keys, threshold=THRESHOLD, minhash=minhash).keep


def data_juicer_keep(keys: list[str]) -> np.ndarray:
    """Run in data-juicer's own venv (``--data-juicer-python`` of bench/dedup.py)."""
    from data_juicer.core.data import NestedDataset
    from data_juicer.ops.deduplicator import DocumentMinhashDeduplicator
    from datasets import Dataset

    rows = NestedDataset(
        Dataset.from_dict({"text": keys, "row": list(range(len(keys)))})
    )
    deduplicator = DocumentMinhashDeduplicator(
        tokenization="character",
        window_size=5,
        num_permutations=256,
        jaccard_threshold=THRESHOLD,
    )
    keep = np.zeros(len(keys), dtype=bool)
    keep[deduplicator.run(rows)["row"]] = True
    return keep


METHODS = {
    "rensa": rensa_keep,
    "datasketch": datasketch_keep,
    "ours": ours_keep,
    "data_juicer": data_juicer_keep,
}


def main() -> None:
    method, keys_path, out_path = sys.argv[1:4]
    keys = json.loads(Path(keys_path).read_text(encoding="utf-8"))
    wall, cpu = time.perf_counter(), time.process_time()
    keep = METHODS[method](keys)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    np.save(out_path, keep)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"wall": wall, "cpu": cpu, "rss_gib": peak}))


if __name__ == "__main__":
    main()
