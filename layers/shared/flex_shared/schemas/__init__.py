"""Pydantic request/response models of the APIs, shared by the functions and the local runner."""
