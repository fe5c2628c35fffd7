"""flex backend shared layer: configuration, database, models, embeddings, chunking."""
