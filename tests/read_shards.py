"""Opens every shard of a cmcl run with pyarrow and polars and reads every column.

Usage: read_shards.py RUN_DIR. Prints one line per reader; exits non-zero on any mismatch.
"""
import json
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

run = Path(sys.argv[1])
manifest = json.loads((run / "manifest.json").read_text())
expected_columns = [
    "uid", "dataset", "image_id", "caption_id", "caption", "image_path", "image_vector",
    "objects", "source", "positives", "negatives", "neighbours",
]

tables = []
for shard in manifest["shards"]:
    with pa.memory_map(str(run / shard["file"])) as source:
        table = ipc.open_file(source).read_all()
    assert table.column_names == expected_columns, table.column_names
    assert table.num_rows == shard["rows"], (shard["file"], table.num_rows)
    assert table.schema.metadata[b"cmcl.schema_version"] == b"1"
    table.validate(full=True)
    rows = table.to_pylist()  # touches every value of every column
    for row in rows:
        assert len(row["uid"]) == 16
        for item in row["negatives"]:
            assert item["kind"] == "tfidf" and isinstance(item["score"], float)
            json.loads(item["params"])
    if shard.get("parquet"):
        pq_table = pq.read_table(run / shard["parquet"]["file"])
        assert pq_table.to_pylist() == rows, shard["parquet"]["file"]
    tables.append(table)
total = sum(t.num_rows for t in tables)
print(f"pyarrow rows={total}")

frames = [pl.read_ipc(run / s["file"]) for s in manifest["shards"]]
frame = pl.concat(frames)
assert frame.columns == expected_columns, frame.columns
negatives = frame.select(pl.col("negatives").list.len().sum()).item()
assert negatives == manifest["stages"]["tfidf"]["produced"], (negatives, manifest["stages"])
for column in expected_columns:
    frame.get_column(column).to_list()
print(f"polars rows={frame.height}")
