"""The hashing embedder (``EMBEDDING_PROVIDER=hash``, ``local-hash-v1``): deterministic
everywhere, unit-norm 1024-d, any Unicode, and related job texts measurably closer than
unrelated ones."""

from __future__ import annotations

import hashlib
import math
import os
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devtools.lambda_context import FakeLambdaContext
from flex_shared import config, embeddings
from flex_shared.chunking import chunk_text
from flex_shared.embeddings import (
    EmbeddingInputError,
    HashEmbedder,
    deadline_from_context,
    get_embedder,
    reset_embedder,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "devtools" / "samples"
PROBE = "Senior Python 백엔드 개발자 — AWS Lambda, PostgreSQL, pgvector 경험자 우대!"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def fingerprint(vector: list[float]) -> str:
    return hashlib.sha256(struct.pack(f"<{len(vector)}d", *vector)).hexdigest()


@pytest.fixture(scope="module")
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.mark.parametrize(
    "text",
    [
        "Backend engineer",
        "머신러닝 엔지니어를 채용합니다.",
        "C++ / C# / Node.js",
        "🚀✨",
        "!!! ???",
        "x",
        "혼합 mixed テキスト 中文 العربية",
        "word " * 5_000,
    ],
)
def test_vectors_are_1024_d_unit_norm_for_any_text(embedder: HashEmbedder, text: str):
    vector = embedder.embed_query(text)
    assert len(vector) == 1024
    assert math.isclose(math.fsum(v * v for v in vector), 1.0, rel_tol=1e-9)
    assert all(math.isfinite(v) for v in vector)


def test_two_processes_with_different_hash_seeds_give_identical_vectors(embedder: HashEmbedder):
    # given the vector computed here
    expected = fingerprint(embedder.embed_query(PROBE))
    script = (
        "import hashlib, struct\n"
        "from flex_shared.embeddings import HashEmbedder\n"
        f"v = HashEmbedder().embed_query({PROBE!r})\n"
        "print(hashlib.sha256(struct.pack(f'<{len(v)}d', *v)).hexdigest())\n"
    )
    # when two fresh interpreters with different string-hash salts compute it
    results = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO_ROOT / "layers/shared")}
        completed = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        results.append(completed.stdout.strip())
    # then every process produced the very same bits
    assert results == [expected, expected]


def test_vectors_are_pinned_so_a_changed_algorithm_must_change_the_model_id(
    embedder: HashEmbedder,
):
    # Stored chunks record `local-hash-v1`; if this fails, bump HashEmbedder.model_id.
    vector = embedder.embed_query(PROBE)
    rounded = ",".join(f"{v:.6f}" for v in vector)
    assert embedder.model_id == "local-hash-v1"
    assert hashlib.sha256(rounded.encode()).hexdigest()[:16] == "4829305f90d2f318"


@pytest.mark.parametrize(
    ("anchor", "related", "unrelated"),
    [
        (
            "Senior Python backend engineer with AWS Lambda and PostgreSQL experience",
            "We are hiring a Python developer to build serverless backends on AWS Lambda",
            "Pastry chef wanted for a French bakery; croissants and cakes daily",
        ),
        (
            "백엔드 개발자 채용: Python, AWS 경험자 우대",
            "파이썬과 AWS를 활용한 백엔드 개발 경험이 있는 개발자를 찾습니다",
            "제과점에서 케이크와 빵을 만드는 파티시에를 모집합니다",
        ),
        # Korean inflection: 개발자를 / 개발자가 / 개발자 share character bigrams
        ("개발자를 모집합니다", "개발자가 필요합니다", "케이크를 굽습니다"),
    ],
)
def test_related_texts_are_closer_than_unrelated_ones(
    embedder: HashEmbedder, anchor: str, related: str, unrelated: str
):
    a, r, u = embedder.embed_documents([anchor, related, unrelated])
    assert cosine(a, r) > cosine(a, u) + 0.1


@pytest.mark.parametrize(
    ("query", "expected_sample"),
    [
        ("Python backend engineer, AWS Lambda, PostgreSQL", "backend-engineer-en.md"),
        ("추천 모델 개발과 임베딩 검색 경험", "ml-engineer-ko.txt"),
        ("SQL 대시보드와 리텐션 지표 분석", "data-analyst-ko.txt"),
    ],
)
def test_searching_sample_chunks_finds_the_matching_job(
    embedder: HashEmbedder, query: str, expected_sample: str
):
    # given the chunks of every sample job description, embedded
    chunks = [
        (path.name, chunk)
        for path in sorted([*SAMPLES.glob("*.md"), *SAMPLES.glob("*.txt")])
        for chunk in chunk_text(path.read_text(encoding="utf-8"))
    ]
    vectors = embedder.embed_documents([chunk for _, chunk in chunks])

    # when a query is embedded and compared with every chunk
    query_vector = embedder.embed_query(query)
    best = max(range(len(chunks)), key=lambda i: cosine(query_vector, vectors[i]))

    # then the best chunk comes from the job that query describes
    assert chunks[best][0] == expected_sample


def test_query_and_document_embeddings_agree(embedder: HashEmbedder):
    assert embedder.embed_query(PROBE) == embedder.embed_documents([PROBE])[0]


@pytest.mark.parametrize(
    ("texts", "index"), [(["ok", ""], 1), ([" \n\t "], 0), (["x" * 50_001], 0)]
)
def test_texts_titan_would_reject_are_rejected_offline_too(
    embedder: HashEmbedder, texts: list[str], index: int
):
    with pytest.raises(EmbeddingInputError) as raised:
        embedder.embed_documents(texts)
    assert raised.value.index == index
    assert f"text {index}" in str(raised.value)


def test_get_embedder_with_hash_provider(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EMBEDDING_PROVIDER", "hash")
    config.reset_settings()
    reset_embedder()
    try:
        embedder = get_embedder()
        assert isinstance(embedder, HashEmbedder)
        assert (embedder.model_id, embedder.dimensions) == ("local-hash-v1", 1024)
        assert get_embedder() is embedder
    finally:
        monkeypatch.undo()
        config.reset_settings()
        reset_embedder()


def test_bounded_feature_caches_give_the_same_vectors_from_many_threads(
    monkeypatch: pytest.MonkeyPatch,
):
    # given the expected vectors, and an embedder whose caches overflow every few texts
    texts = [f"{word} 개발자 {i} engineer 경험 {i * 3}" for i, word in enumerate("abcdefghij" * 6)]
    expected = HashEmbedder().embed_documents(texts)
    monkeypatch.setattr(embeddings, "_CACHE_LIMIT", 8)
    shared = HashEmbedder()

    # when four threads embed them at once
    with ThreadPoolExecutor(max_workers=4) as pool:
        vectors = list(pool.map(shared.embed_query, texts))

    # then every vector is the same as computed alone, and the caches stayed small
    assert vectors == expected
    assert len(shared._caches.word_slots) <= 8 + 10


def test_deadline_from_lambda_context_keeps_a_reserve():
    before = time.monotonic()
    deadline = deadline_from_context(FakeLambdaContext(remaining_ms=30_000), reserve_seconds=5)
    assert before + 25 <= deadline <= time.monotonic() + 25
    # nearly out of time: the deadline is now, never in the past beyond it
    assert deadline_from_context(FakeLambdaContext(remaining_ms=1_000)) <= time.monotonic()
