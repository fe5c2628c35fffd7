"""Keyword search over job chunks, Korean and English, without extensions beyond ``vector``.

``job_chunks.search_vector`` is a stored generated column: PostgreSQL computes it on every
insert (ingestion's COPY included) and this migration's ``ADD COLUMN`` backfills every existing
row (a table rewrite under an exclusive lock: about a minute per 100k chunks on a small
instance). A GIN index serves ``@@``.

- Latin-script words go through the ``english`` configuration: stemmed (``engineers`` and
  ``engineer`` are one lexeme) and stop words dropped.
- Hangul runs are indexed as overlapping character bigrams (the idea of ``pg_bigm``) with the
  ``simple`` configuration: ``쿠버네티스를`` contains every bigram of ``쿠버네티스``, so a word is
  found whatever particle follows it. A one-syllable run is indexed as itself.
- Scripts are split before parsing, so ``Appium으로`` is the word ``appium`` plus ``으로``.

``job_chunk_search_query(query, match_all)`` turns a query into a ``tsquery`` the same way:
English lexemes, and for each Korean word, after a trailing particle or common ending is cut off
(``경험이`` -> ``경험``, ``운영한`` -> ``운영``), the AND of its bigrams (a one-syllable stem is a
prefix match); Korean function words and particle-only runs are dropped. The words are AND-ed
(``match_all``) or OR-ed; NULL when the query has no searchable word.

Both functions use SQL-standard bodies: parsed once here, bound to ``pg_catalog`` objects, so
neither the caller's ``search_path`` nor a restore can change what they compute.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Trailing particles and endings cut from a Korean query word, longest first. A one-syllable
# ending is cut only from words of three or more syllables (회의, 경로, 아이 stay whole).
_KOREAN_ENDINGS = (
    "으로서 으로써 에서의 이라는 이라고 "
    "에서 으로 에게 께서 한테 까지 부터 처럼 보다 이나 이랑 라는 로서 로써 와의 과의 에의 "
    "하는 하고 하며 하여 해서 했던 하던 되는 적인 "
    "을 를 이 가 은 는 의 에 로 와 과 도 만 한 된 할 인"
)
KOREAN_ENDINGS = _KOREAN_ENDINGS.split()
# Korean words that say nothing about a job; AND-ing them would only lose matches.
_KOREAN_STOPWORDS = (
    "있는 있고 있으며 있으신 있습니다 합니다 및 등 또는 위한 대한 통한 통해 관련 분 것 수 더 또"
    " 우리 저희"
)
KOREAN_STOPWORDS = _KOREAN_STOPWORDS.split()


def _array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{word}'" for word in words) + "]::text[]"


SEARCH_VECTOR_FUNCTION = r"""
CREATE FUNCTION job_chunk_search_vector(chunk text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN to_tsvector('english'::regconfig,
                   regexp_replace(normalize(chunk, NFKC), '[가-힣]+', ' ', 'g'))
    || to_tsvector('simple'::regconfig, (
        SELECT coalesce(string_agg(
                   CASE WHEN length(m.run[1]) = 1 THEN m.run[1] ELSE substr(m.run[1], i, 2) END,
                   ' ' ORDER BY m.ord, i), '')
        FROM regexp_matches(normalize(chunk, NFKC), '[가-힣]+', 'g') WITH ORDINALITY AS m(run, ord)
        CROSS JOIN LATERAL generate_series(1, greatest(length(m.run[1]) - 1, 1)) AS i))
"""

SEARCH_QUERY_FUNCTION = rf"""
CREATE FUNCTION job_chunk_search_query(query text, match_all boolean) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN (
    WITH normalized AS (
        SELECT normalize(query, NFKC) AS text
    ),
    korean_stems AS (
        SELECT coalesce(
            (SELECT left(m.run[1], -length(e.ending))
             FROM unnest({_array(KOREAN_ENDINGS)}) AS e(ending)
             WHERE right(m.run[1], length(e.ending)) = e.ending
               AND (length(m.run[1]) = length(e.ending)
                    OR length(m.run[1]) - length(e.ending)
                       >= CASE WHEN length(e.ending) = 1 THEN 2 ELSE 1 END)
             ORDER BY length(e.ending) DESC
             LIMIT 1),
            m.run[1]) AS stem
        FROM normalized, regexp_matches(normalized.text, '[가-힣]+', 'g') AS m(run)
        WHERE m.run[1] <> ALL ({_array(KOREAN_STOPWORDS)})
    ),
    terms AS (
        SELECT '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''' AS term
        FROM normalized,
             unnest(tsvector_to_array(to_tsvector('english'::regconfig,
                 regexp_replace(normalized.text, '[가-힣]+', ' ', 'g')))) AS lexeme
        UNION ALL
        SELECT CASE
                   WHEN length(stem) = 1 THEN '''' || stem || ''':*'
                   ELSE '(' || (SELECT string_agg('''' || substr(stem, i, 2) || '''', ' & '
                                                  ORDER BY i)
                                FROM generate_series(1, length(stem) - 1) AS i) || ')'
               END
        FROM korean_stems
        WHERE stem <> ''
    )
    SELECT CAST(nullif(string_agg(DISTINCT term, CASE WHEN match_all THEN ' & ' ELSE ' | ' END),
                       '') AS tsquery)
    FROM terms
)
"""


def upgrade() -> None:
    op.execute(SEARCH_VECTOR_FUNCTION)
    op.execute(SEARCH_QUERY_FUNCTION)
    # One statement, so the rewrite that computes the column already stores it MAIN: kept in
    # the row (the 4 KB embedding is what goes to TOAST), so matching and ranking read it from
    # the heap page instead of a TOAST lookup per chunk (4x faster in bench_search).
    op.execute(
        "ALTER TABLE job_chunks ADD COLUMN search_vector tsvector"
        " GENERATED ALWAYS AS (job_chunk_search_vector(chunk_text)) STORED NOT NULL,"
        " ALTER COLUMN search_vector SET STORAGE MAIN"
    )
    op.execute("CREATE INDEX ix_job_chunks_search_vector ON job_chunks USING gin (search_vector)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_job_chunks_search_vector")
    op.execute("ALTER TABLE job_chunks DROP COLUMN search_vector")
    op.execute("DROP FUNCTION job_chunk_search_query(text, boolean)")
    op.execute("DROP FUNCTION job_chunk_search_vector(text)")
