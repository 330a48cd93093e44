"""The independent client that `ingest restore` is set beside in the scale benchmark.

Usage: bare_client.py GRPC_URL COLLECTION DIM PARQUET_DIR PARALLEL BATCH

Creates COLLECTION on the Qdrant server at GRPC_URL as `ingest` lays one out (a DIM-wide
cosine vector, the sparse vector `bm25` with IDF, the same payload indexes), then upserts
every row of the parquet copy in PARQUET_DIR (a row per point id: the first one read) with
Qdrant's own Python client: `upload_points`, PARALLEL worker processes, BATCH points a request,
over gRPC, each request waited for. The rows are read from the copy as they are uploaded, as a
restore reads them. Prints one JSON object: the points upserted and the seconds that took
(the collection's creation not counted), then drops the collection.
"""

import glob
import json
import os
import sys
import time

import pyarrow.parquet as pq
from qdrant_client import QdrantClient, models

ORIGIN_FIELDS = ("page", "page_end", "sheet", "slide", "heading", "title")


def points(parquet_dir, dim):
    """Every live row of the copy as a point, a row group at a time."""
    seen = set()
    for path in sorted(glob.glob(os.path.join(parquet_dir, "*.parquet"))):
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group)
            columns = {name: table.column(name).to_pylist() for name in table.column_names if name != "vector"}
            vectors = table.column("vector").combine_chunks().values.to_numpy().reshape(-1, dim)
            for row in range(table.num_rows):
                point_id = columns["point_id"][row]
                if point_id in seen:
                    continue
                seen.add(point_id)
                path_text = columns["path"][row]
                payload = {
                    "path": path_text,
                    "doc_id": columns["doc_id"][row],
                    "chunk_index": columns["chunk_index"][row],
                    "content": columns["content"][row],
                    "content_hash": columns["content_hash"][row],
                    "job_id": columns["job_id"][row],
                    "model": columns["model"][row],
                    "created_at": columns["created_at"][row].isoformat(),
                    "analyzer": columns["analyzer"][row],
                }
                ext = os.path.splitext(path_text)[1].lstrip(".").lower()
                if ext:
                    payload["ext"] = ext
                for field in ORIGIN_FIELDS:
                    if columns[field][row] is not None:
                        payload[field] = columns[field][row]
                yield models.PointStruct(
                    id=point_id,
                    vector={
                        "": vectors[row].tolist(),
                        "bm25": models.SparseVector(
                            indices=columns["sparse_indices"][row], values=columns["sparse_values"][row]
                        ),
                    },
                    payload=payload,
                )


def main():
    url, collection, dim, parquet_dir, parallel, batch = sys.argv[1:7]
    dim, parallel, batch = int(dim), int(parallel), int(batch)
    host_port = url.split("://", 1)[-1]
    host, port = host_port.rsplit(":", 1)
    client = QdrantClient(host=host, grpc_port=int(port), prefer_grpc=True, timeout=600)
    client.create_collection(
        collection,
        vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
        sparse_vectors_config={"bm25": models.SparseVectorParams(modifier=models.Modifier.IDF)},
    )
    for field, schema in (
        ("doc_id", models.PayloadSchemaType.KEYWORD),
        ("chunk_index", models.PayloadSchemaType.INTEGER),
        ("ext", models.PayloadSchemaType.KEYWORD),
        ("analyzer", models.PayloadSchemaType.KEYWORD),
    ):
        client.create_payload_index(collection, field, field_schema=schema, wait=True)
    started = time.monotonic()
    client.upload_points(collection, points(parquet_dir, dim), batch_size=batch, parallel=parallel, wait=True)
    seconds = time.monotonic() - started
    count = client.count(collection, exact=True).count
    client.delete_collection(collection)
    print(json.dumps({"points": count, "seconds": seconds}))


if __name__ == "__main__":
    main()
