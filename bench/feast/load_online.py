"""Write the bench's profiles into Feast's Redis online store in chunks (runs in bench/feast/.venv; started by
bench/bench_profile_read.py after ``feast apply``).

``feast materialize`` of the whole Parquet source is Feast's usual path, but it holds the entire offline
result as Python objects: at 1M profiles of 44 columns it grew past 22 GB and was killed by the kernel on
this 23 GB machine. ``FeatureStore.write_to_online_store`` (the same conversion to Feast's values and the
same Redis writer, from a DataFrame) takes the file 20,000 rows at a time instead, in ~1 GB. The bench runs
one such process per core, each taking every ``parts``-th chunk. Prints one JSON line: rows written, seconds.

Usage: load_online.py REPO PARQUET FEATURE_VIEW PART PARTS"""

import json
import sys
import time

import pyarrow.parquet as pq
from feast import FeatureStore


def main(repo: str, parquet: str, feature_view: str, part: int, parts: int) -> int:
    store = FeatureStore(repo_path=repo)
    t0 = time.perf_counter()
    rows = 0
    for index, batch in enumerate(pq.ParquetFile(parquet).iter_batches(batch_size=20_000)):
        if index % parts != part:
            continue
        store.write_to_online_store(feature_view, batch.to_pandas())
        rows += batch.num_rows
    print(json.dumps({"rows": rows, "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4], int(sys.argv[4]), int(sys.argv[5])))
