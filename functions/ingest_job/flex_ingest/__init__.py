"""The ingest_job function: S3 notifications -> jobs + job_chunks (SPEC.md, "Ingestion").

handler (the event loop, logs, metrics) -> service (fetch, extract, chunk, embed; its
transactions) -> store (SQL, COPY).
"""
