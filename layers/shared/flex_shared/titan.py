"""Amazon Titan Text Embeddings V2: the model's published facts, in one place for the embedder,
the chunker, the search API's request schema and the local fake Titan. Imports nothing."""

TITAN_V2_MODEL_ID = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)
"""The output sizes the model offers (``dimensions`` in the request body)."""

TITAN_MAX_INPUT_CHARS = 50_000
TITAN_MAX_INPUT_TOKENS = 8_192
"""Longer inputs, in characters or in the model's tokens, are a ``ValidationException``."""
