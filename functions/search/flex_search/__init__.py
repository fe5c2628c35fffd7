"""The search function: semantic search over job chunks and job reads (SPEC.md, "Search API").

handler (Powertools routes) -> service (embedding, ranking, one transaction) -> store (SQL).
"""
