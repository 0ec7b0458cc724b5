"""The HTTP floor of ``bench_broker.py``: the publish route's shape and nothing else.

A FastAPI app under uvicorn, configured as ``govshare serve`` runs its own, whose
``POST /v1/records`` takes the same multipart form (a file and a category),
reads the upload in full and answers ``202`` with a small JSON body: no
authentication, encryption, store, database or chain. No broker built on this
framework can publish faster through its API, with the benchmark's own clients,
on the machine the benchmark runs on; the ratio against the raw anchor baseline
is the ceiling of ``publish_ratio`` there.

Run by the benchmark: ``python scripts/bench/floor_app.py PORT``.
"""

from __future__ import annotations

import sys
from typing import Annotated

import uvicorn
from fastapi import FastAPI, File, Form, UploadFile

app = FastAPI()


@app.post("/v1/records", status_code=202)
def publish(
    file: Annotated[UploadFile, File()], category: Annotated[str, Form()]
) -> dict[str, str]:
    size = len(file.file.read())
    return {"operation_id": "floor", "record_id": str(size), "state": "pending"}


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", server_header=False)
