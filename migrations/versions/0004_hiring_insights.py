"""Hiring insights: per-job aggregates of the interviews, kept current by triggers, and the
question templates' embeddings.

``GET /jobs/{job_id}/applicants`` and ``GET /jobs/{job_id}/insights`` must answer a job with
10,000 sessions and 100,000 results in milliseconds, so they read small per-job aggregates,
never the results themselves:

- ``job_applicant_stats``, one row per (job, applicant): sessions by status, result counts, the
  exact (numeric) sums and counts of each score over the results of completed sessions, the
  last completion, and ``ranking_key`` (minus the average overall score; +Infinity without
  one), indexed with the job and the applicant id in the ranking's order, so a page is an index
  range scan.
- ``job_score_counts``: how many of the job's results have each value of each score, and
  ``job_score_buckets`` the same per whole point (``floor(value)``, 0..100) with the exact sum
  of those values: a score's count and mean are ~100 bucket rows, and the value at a position
  of the sorted scores is found by locating its bucket, then reading only that bucket's values
  (percentiles without sorting 100,000 scores).
- ``job_keyword_counts``: per category, how many of the job's results mention each keyword,
  indexed by count within the category (the top 20 are an index range per category).
- ``job_question_counts`` and ``job_question_keyword_counts``: per question id, how many
  results answer it and how many of those mention each keyword (the expected keywords'
  coverage is computed from them at read time, against the questions as they are then).

Keywords and categories are compared case-insensitively (``lower``) and counted by their first
200 characters (``interview_keyword_key``); a keyword counts once per result.

Each aggregate is defined once, as a view over the interview tables (``*_computed``): the
backfill below copies the views, the tests compare the tables with them. Triggers keep the
tables equal to the views in the writing transaction:

- a session's row (insert, status or completion change, delete) and a result's scores
  recompute the (job, applicant) row from that pair's sessions and results, after locking it,
  so concurrent writers for the same pair queue instead of overwriting each other;
- a result's insert, replacement or delete adds its differences to the per-value, keyword and
  question counts (``results = results + delta``, in key order: concurrent writers never
  deadlock on one another); rows that fall to zero are deleted, so nothing of an erased result
  stays behind.

``interview_results.job_id`` copies the session's job (set by a trigger on insert): a result
deleted together with its session (erasure, ``ON DELETE CASCADE``) still knows which job's
counts to decrement. A session's ``job_id`` and ``applicant_id`` never change (a trigger
refuses it), so the copy stays true.

``question_embeddings`` keeps each question template's embedding with the model that made it and
the SHA-256 of the text it was made from: a question is embedded again only when either differs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCORES = ("overall", "logic", "relevance", "technical", "communication")
"""The scores of a result (``<name>_score`` columns), as the aggregates name them."""

AGGREGATE_TABLES = (
    "job_applicant_stats",
    "job_score_counts",
    "job_score_buckets",
    "job_keyword_counts",
    "job_question_counts",
    "job_question_keyword_counts",
)

KEYWORD_KEY_MAX_CHARS = 200
"""Keywords and categories are counted by this many first characters: a B-tree key must stay
far below PostgreSQL's 2,700-byte limit whatever a caller sends."""

FUNCTIONS = [
    f"""
CREATE FUNCTION interview_keyword_key(word text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN left(lower(word), {KEYWORD_KEY_MAX_CHARS})
""",
    """
CREATE FUNCTION interview_result_scores(
    overall double precision,
    logic double precision,
    relevance double precision,
    technical double precision,
    communication double precision
) RETURNS TABLE (score text, value double precision)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT s.score, s.value
    FROM (VALUES ('overall', overall), ('logic', logic), ('relevance', relevance),
                 ('technical', technical), ('communication', communication)) AS s(score, value)
    WHERE s.value IS NOT NULL;
END
""",
    # Distinct (category, keyword) pairs of a result's keywords object; values that are not
    # lists of strings are ignored (the API never stores them).
    """
CREATE FUNCTION interview_result_keywords(keywords jsonb)
    RETURNS TABLE (category text, keyword text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT DISTINCT interview_keyword_key(c.key), interview_keyword_key(k.value #>> '{}')
    FROM jsonb_each(CASE WHEN jsonb_typeof(keywords) = 'object' THEN keywords
                         ELSE '{}'::jsonb END) AS c
    CROSS JOIN LATERAL jsonb_array_elements(
        CASE WHEN jsonb_typeof(c.value) = 'array' THEN c.value ELSE '[]'::jsonb END) AS k
    WHERE jsonb_typeof(k.value) = 'string';
END
""",
    """
CREATE FUNCTION interview_result_keyword_set(keywords jsonb) RETURNS TABLE (keyword text)
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
    SELECT DISTINCT k.keyword FROM interview_result_keywords(keywords) AS k;
END
""",
    # Every string anywhere in a question's expected_keywords (a list, an object of lists, a
    # single string), as keyword keys; NULL for NULL.
    """
CREATE FUNCTION question_expected_keywords(expected jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(
    SELECT DISTINCT interview_keyword_key(v #>> '{}')
    FROM jsonb_path_query(expected, 'strict $.**') AS v
    WHERE jsonb_typeof(v) = 'string' AND v #>> '{}' <> ''
    ORDER BY 1)
""",
]

VIEWS = {
    "job_applicant_stats_computed": """
SELECT s.job_id, s.applicant_id,
       count(*) FILTER (WHERE s.status = 'pending')::integer AS pending_sessions,
       count(*) FILTER (WHERE s.status = 'in_progress')::integer AS in_progress_sessions,
       count(*) FILTER (WHERE s.status = 'completed')::integer AS completed_sessions,
       count(*) FILTER (WHERE s.status = 'failed')::integer AS failed_sessions,
       coalesce(sum(r.results), 0)::integer AS results,
       coalesce(sum(r.results) FILTER (WHERE s.status = 'completed'), 0)::integer
           AS completed_results,
"""
    + ",\n".join(
        f"       sum(r.{score}_sum) FILTER (WHERE s.status = 'completed') AS {score}_sum,\n"
        f"       coalesce(sum(r.{score}_count) FILTER (WHERE s.status = 'completed'), 0)"
        f"::integer AS {score}_count"
        for score in SCORES
    )
    + """,
       max(s.completed_at) FILTER (WHERE s.status = 'completed') AS last_completed_at
FROM interview_sessions AS s
CROSS JOIN LATERAL (
    SELECT count(*) AS results,
"""
    + ",\n".join(
        f"           sum({score}_score::numeric) AS {score}_sum,"
        f" count({score}_score) AS {score}_count"
        for score in SCORES
    )
    + """
    FROM interview_results WHERE interview_id = s.id
) AS r
GROUP BY s.job_id, s.applicant_id
""",
    "job_score_counts_computed": """
SELECT r.job_id, s.score, s.value, count(*)::integer AS results
FROM interview_results AS r
CROSS JOIN LATERAL interview_result_scores(r.overall_score, r.logic_score, r.relevance_score,
                                           r.technical_score, r.communication_score) AS s
GROUP BY r.job_id, s.score, s.value
""",
    "job_score_buckets_computed": """
SELECT r.job_id, s.score, floor(s.value)::integer AS bucket, count(*)::integer AS results,
       sum(s.value::numeric) AS total
FROM interview_results AS r
CROSS JOIN LATERAL interview_result_scores(r.overall_score, r.logic_score, r.relevance_score,
                                           r.technical_score, r.communication_score) AS s
GROUP BY r.job_id, s.score, floor(s.value)::integer
""",
    "job_keyword_counts_computed": """
SELECT r.job_id, k.category, k.keyword, count(*)::integer AS results
FROM interview_results AS r
CROSS JOIN LATERAL interview_result_keywords(r.keywords) AS k
GROUP BY r.job_id, k.category, k.keyword
""",
    "job_question_counts_computed": """
SELECT job_id, question_id, count(*)::integer AS results
FROM interview_results
GROUP BY job_id, question_id
""",
    "job_question_keyword_counts_computed": """
SELECT r.job_id, r.question_id, k.keyword, count(*)::integer AS results
FROM interview_results AS r
CROSS JOIN LATERAL interview_result_keyword_set(r.keywords) AS k
GROUP BY r.job_id, r.question_id, k.keyword
""",
}

RANKING_KEY = "coalesce(-(overall_sum / nullif(overall_count, 0))::double precision, 'Infinity')"
"""The applicants' order (ascending, then ``applicant_id``): minus the average overall score,
+Infinity for an applicant without one, so one row comparison pages through the ranking."""

_STATS_COLUMNS = [
    "pending_sessions",
    "in_progress_sessions",
    "completed_sessions",
    "failed_sessions",
    "results",
    "completed_results",
    *(f"{score}_{part}" for score in SCORES for part in ("sum", "count")),
    "last_completed_at",
]

REFRESH_APPLICANT_FUNCTION = f"""
CREATE FUNCTION refresh_job_applicant_stats(p_job_id integer, p_applicant_id integer)
    RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- Lock the pair's row first (creating it if need be), then read its sessions and results:
    -- each statement here takes a new snapshot, so a writer that waited for the lock sees what
    -- the one before it committed, and no update is lost. A row deleted by the writer we
    -- waited for (its last session erased) is created again.
    LOOP
        PERFORM 1 FROM job_applicant_stats
        WHERE job_id = p_job_id AND applicant_id = p_applicant_id FOR UPDATE;
        EXIT WHEN FOUND;
        INSERT INTO job_applicant_stats (job_id, applicant_id)
        VALUES (p_job_id, p_applicant_id) ON CONFLICT DO NOTHING;
    END LOOP;
    UPDATE job_applicant_stats AS t SET
        {", ".join(f"{column} = c.{column}" for column in _STATS_COLUMNS)}
    FROM job_applicant_stats_computed AS c
    WHERE c.job_id = p_job_id AND c.applicant_id = p_applicant_id
      AND t.job_id = p_job_id AND t.applicant_id = p_applicant_id;
    IF NOT FOUND THEN
        -- No session left (erased): nothing of the applicant stays in the job's aggregates.
        DELETE FROM job_applicant_stats
        WHERE job_id = p_job_id AND applicant_id = p_applicant_id;
    END IF;
END
$$
"""

SESSION_TRIGGER_FUNCTIONS = [
    """
CREATE FUNCTION interview_sessions_keep_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.job_id IS DISTINCT FROM OLD.job_id
       OR NEW.applicant_id IS DISTINCT FROM OLD.applicant_id THEN
        RAISE EXCEPTION 'an interview session''s job_id and applicant_id never change'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$
""",
    """
CREATE FUNCTION interview_sessions_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM refresh_job_applicant_stats(OLD.job_id, OLD.applicant_id);
    ELSE
        PERFORM refresh_job_applicant_stats(NEW.job_id, NEW.applicant_id);
    END IF;
    RETURN NULL;
END
$$
""",
]

_SCORE_ARGUMENTS = ", ".join(f"{{row}}.{score}_score" for score in SCORES)

RESULT_TRIGGER_FUNCTIONS = [
    """
CREATE FUNCTION interview_results_set_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    SELECT job_id INTO NEW.job_id FROM interview_sessions WHERE id = NEW.interview_id;
    RETURN NEW;
END
$$
""",
    f"""
CREATE FUNCTION interview_results_track() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_job integer;  -- NULL on INSERT: the old row contributes nothing
    new_job integer;  -- NULL on DELETE
    moved boolean;  -- the row counts for another (job, question) than before, or is new/gone
BEGIN
    IF TG_OP <> 'INSERT' THEN old_job := OLD.job_id; END IF;
    IF TG_OP <> 'DELETE' THEN new_job := NEW.job_id; END IF;

    -- The applicant's row, when the scores (or the session) changed and the session is still
    -- there (a session deleted with its results refreshes the row itself).
    IF TG_OP <> 'UPDATE'
       OR OLD.interview_id IS DISTINCT FROM NEW.interview_id
       OR ({_SCORE_ARGUMENTS.format(row="OLD")})
          IS DISTINCT FROM ({_SCORE_ARGUMENTS.format(row="NEW")}) THEN
        PERFORM refresh_job_applicant_stats(s.job_id, s.applicant_id)
        FROM (SELECT DISTINCT job_id, applicant_id FROM interview_sessions
              WHERE id IN (OLD.interview_id, NEW.interview_id)
              ORDER BY job_id, applicant_id) AS s;
    END IF;

    -- Counts per score value, keyword and question: old row -1, new row +1, net changes only,
    -- in key order (writers lock rows in one order: no deadlock between them). Each statement
    -- runs only when its part of the row changed (a replacement often changes little).
    moved := TG_OP <> 'UPDATE' OR old_job IS DISTINCT FROM new_job
             OR OLD.question_id IS DISTINCT FROM NEW.question_id;
    IF moved OR ({_SCORE_ARGUMENTS.format(row="OLD")})
                IS DISTINCT FROM ({_SCORE_ARGUMENTS.format(row="NEW")}) THEN
        INSERT INTO job_score_counts AS t (job_id, score, value, results)
        SELECT d.job_id, d.score, d.value, sum(d.delta)
        FROM (SELECT old_job AS job_id, s.score, s.value, -1 AS delta
              FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="OLD")}) AS s
              WHERE old_job IS NOT NULL
              UNION ALL
              SELECT new_job, s.score, s.value, 1
              FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="NEW")}) AS s
              WHERE new_job IS NOT NULL) AS d
        GROUP BY d.job_id, d.score, d.value
        HAVING sum(d.delta) <> 0
        ORDER BY d.job_id, d.score, d.value
        ON CONFLICT (job_id, score, value) DO UPDATE SET results = t.results + EXCLUDED.results;

        INSERT INTO job_score_buckets AS t (job_id, score, bucket, results, total)
        SELECT d.job_id, d.score, floor(d.value)::integer, sum(d.delta), sum(d.delta * d.value)
        FROM (SELECT old_job AS job_id, s.score, s.value::numeric AS value, -1 AS delta
              FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="OLD")}) AS s
              WHERE old_job IS NOT NULL
              UNION ALL
              SELECT new_job, s.score, s.value::numeric, 1
              FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="NEW")}) AS s
              WHERE new_job IS NOT NULL) AS d
        GROUP BY d.job_id, d.score, floor(d.value)::integer
        HAVING sum(d.delta) <> 0 OR sum(d.delta * d.value) <> 0
        ORDER BY d.job_id, d.score, floor(d.value)::integer
        ON CONFLICT (job_id, score, bucket) DO UPDATE
            SET results = t.results + EXCLUDED.results, total = t.total + EXCLUDED.total;

        IF old_job IS NOT NULL THEN  -- only the old row's values can have fallen to zero
            DELETE FROM job_score_counts
            WHERE job_id = old_job AND results = 0 AND (score, value) IN (
                SELECT s.score, s.value
                FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="OLD")}) AS s);
            DELETE FROM job_score_buckets
            WHERE job_id = old_job AND results = 0 AND (score, bucket) IN (
                SELECT s.score, floor(s.value)::integer
                FROM interview_result_scores({_SCORE_ARGUMENTS.format(row="OLD")}) AS s);
        END IF;
    END IF;

    IF (moved OR OLD.keywords IS DISTINCT FROM NEW.keywords)
       AND (OLD.keywords IS NOT NULL OR NEW.keywords IS NOT NULL) THEN
        INSERT INTO job_keyword_counts AS t (job_id, category, keyword, results)
        SELECT d.job_id, d.category, d.keyword, sum(d.delta)
        FROM (SELECT old_job AS job_id, k.category, k.keyword, -1 AS delta
              FROM interview_result_keywords(OLD.keywords) AS k WHERE old_job IS NOT NULL
              UNION ALL
              SELECT new_job, k.category, k.keyword, 1
              FROM interview_result_keywords(NEW.keywords) AS k WHERE new_job IS NOT NULL) AS d
        GROUP BY d.job_id, d.category, d.keyword
        HAVING sum(d.delta) <> 0
        ORDER BY d.job_id, d.category, d.keyword
        ON CONFLICT (job_id, category, keyword)
            DO UPDATE SET results = t.results + EXCLUDED.results;

        INSERT INTO job_question_keyword_counts AS t (job_id, question_id, keyword, results)
        SELECT d.job_id, d.question_id, d.keyword, sum(d.delta)
        FROM (SELECT old_job AS job_id, OLD.question_id AS question_id, k.keyword, -1 AS delta
              FROM interview_result_keyword_set(OLD.keywords) AS k WHERE old_job IS NOT NULL
              UNION ALL
              SELECT new_job, NEW.question_id, k.keyword, 1
              FROM interview_result_keyword_set(NEW.keywords) AS k
              WHERE new_job IS NOT NULL) AS d
        GROUP BY d.job_id, d.question_id, d.keyword
        HAVING sum(d.delta) <> 0
        ORDER BY d.job_id, d.question_id, d.keyword
        ON CONFLICT (job_id, question_id, keyword)
            DO UPDATE SET results = t.results + EXCLUDED.results;

        IF old_job IS NOT NULL THEN
            DELETE FROM job_keyword_counts
            WHERE job_id = old_job AND results = 0 AND (category, keyword) IN (
                SELECT k.category, k.keyword FROM interview_result_keywords(OLD.keywords) AS k);
            DELETE FROM job_question_keyword_counts
            WHERE job_id = old_job AND question_id = OLD.question_id AND results = 0
              AND keyword IN (
                  SELECT k.keyword FROM interview_result_keyword_set(OLD.keywords) AS k);
        END IF;
    END IF;

    IF moved THEN
        INSERT INTO job_question_counts AS t (job_id, question_id, results)
        SELECT d.job_id, d.question_id, sum(d.delta)
        FROM (SELECT old_job AS job_id, OLD.question_id AS question_id, -1 AS delta
              WHERE old_job IS NOT NULL
              UNION ALL
              SELECT new_job, NEW.question_id, 1 WHERE new_job IS NOT NULL) AS d
        GROUP BY d.job_id, d.question_id
        HAVING sum(d.delta) <> 0
        ORDER BY d.job_id, d.question_id
        ON CONFLICT (job_id, question_id) DO UPDATE SET results = t.results + EXCLUDED.results;
        IF old_job IS NOT NULL THEN
            DELETE FROM job_question_counts
            WHERE job_id = old_job AND question_id = OLD.question_id AND results = 0;
        END IF;
    END IF;
    RETURN NULL;
END
$$
""",
]

TRUNCATE_FUNCTION = f"""
CREATE FUNCTION truncate_interview_aggregates() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE {", ".join(AGGREGATE_TABLES)};
    RETURN NULL;
END
$$
"""
"""TRUNCATE fires no row trigger: emptying the interview tables empties their aggregates."""

TRIGGERS = [
    (
        "interview_sessions_keep_owner",
        "interview_sessions",
        "BEFORE UPDATE OF job_id, applicant_id ON interview_sessions FOR EACH ROW"
        " EXECUTE FUNCTION interview_sessions_keep_owner()",
    ),
    (
        "interview_sessions_track",
        "interview_sessions",
        "AFTER INSERT OR DELETE ON interview_sessions FOR EACH ROW"
        " EXECUTE FUNCTION interview_sessions_track()",
    ),
    (
        "interview_sessions_track_update",
        "interview_sessions",
        "AFTER UPDATE OF status, completed_at ON interview_sessions FOR EACH ROW"
        " WHEN (OLD.status IS DISTINCT FROM NEW.status"
        " OR OLD.completed_at IS DISTINCT FROM NEW.completed_at)"
        " EXECUTE FUNCTION interview_sessions_track()",
    ),
    (
        "interview_results_set_job",
        "interview_results",
        "BEFORE INSERT OR UPDATE OF interview_id ON interview_results FOR EACH ROW"
        " EXECUTE FUNCTION interview_results_set_job()",
    ),
    (
        "interview_results_track",
        "interview_results",
        "AFTER INSERT OR UPDATE OR DELETE ON interview_results FOR EACH ROW"
        " EXECUTE FUNCTION interview_results_track()",
    ),
    *(
        (
            f"{table}_truncate",
            table,
            f"AFTER TRUNCATE ON {table} FOR EACH STATEMENT"
            " EXECUTE FUNCTION truncate_interview_aggregates()",
        )
        for table in ("interview_sessions", "interview_results")
    ),
]

AGGREGATE_COLUMNS = {
    "job_applicant_stats": ["job_id", "applicant_id", *_STATS_COLUMNS],
    "job_score_counts": ["job_id", "score", "value", "results"],
    "job_score_buckets": ["job_id", "score", "bucket", "results", "total"],
    "job_keyword_counts": ["job_id", "category", "keyword", "results"],
    "job_question_counts": ["job_id", "question_id", "results"],
    "job_question_keyword_counts": ["job_id", "question_id", "keyword", "results"],
}
"""Each aggregate table and the columns it shares with its ``<table>_computed`` view."""


_AGGREGATE_STORAGE = {"fillfactor": "80"}
# The text keys of the aggregates use the "C" collation: byte order is the order the API
# answers in (code points), and sorting or matching thousands of keys per request stays cheap
# (no locale-aware comparison).
"""Aggregate rows are updated in place all the time: room on each page keeps those updates HOT
(no new index entries) and the tables compact."""


def _results_column() -> sa.Column[int]:
    # No CHECK (results >= 0): PostgreSQL checks the row an INSERT ... ON CONFLICT proposes,
    # and a decrement is proposed as a row of -1 before it becomes an update.
    return sa.Column("results", sa.Integer(), nullable=False)


def _create_tables() -> None:
    op.create_table(
        "job_applicant_stats",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("applicant_id", sa.Integer(), nullable=False),
        *(
            sa.Column(column, sa.Integer(), server_default=sa.text("0"), nullable=False)
            for column in (
                "pending_sessions",
                "in_progress_sessions",
                "completed_sessions",
                "failed_sessions",
                "results",
                "completed_results",
            )
        ),
        *(
            column
            for score in SCORES
            for column in (
                sa.Column(f"{score}_sum", sa.Numeric(), nullable=True),
                sa.Column(
                    f"{score}_count", sa.Integer(), server_default=sa.text("0"), nullable=False
                ),
            )
        ),
        sa.Column("last_completed_at", sa.TIMESTAMP(), nullable=True),
        sa.Column(
            "ranking_key",
            sa.Float(),
            sa.Computed(RANKING_KEY, persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("job_id", "applicant_id", name=op.f("pk_job_applicant_stats")),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    op.create_index(
        "ix_job_applicant_stats_ranking",
        "job_applicant_stats",
        ["job_id", "ranking_key", "applicant_id"],
    )
    op.create_table(
        "job_score_counts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.String(length=16, collation="C"), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        _results_column(),
        sa.PrimaryKeyConstraint("job_id", "score", "value", name=op.f("pk_job_score_counts")),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    op.create_table(
        "job_score_buckets",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.String(length=16, collation="C"), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        _results_column(),
        sa.Column("total", sa.Numeric(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "score", "bucket", name=op.f("pk_job_score_buckets")),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    op.create_table(
        "job_keyword_counts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.Text(collation="C"), nullable=False),
        sa.Column("keyword", sa.Text(collation="C"), nullable=False),
        _results_column(),
        sa.PrimaryKeyConstraint(
            "job_id", "category", "keyword", name=op.f("pk_job_keyword_counts")
        ),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    # A category's most frequent keywords: the first entries of its range.
    op.create_index(
        "ix_job_keyword_counts_top",
        "job_keyword_counts",
        ["job_id", "category", sa.text("results DESC"), "keyword"],
    )
    op.create_table(
        "job_question_counts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        _results_column(),
        sa.PrimaryKeyConstraint("job_id", "question_id", name=op.f("pk_job_question_counts")),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    op.create_table(
        "job_question_keyword_counts",
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("keyword", sa.Text(collation="C"), nullable=False),
        _results_column(),
        sa.PrimaryKeyConstraint(
            "job_id", "question_id", "keyword", name=op.f("pk_job_question_keyword_counts")
        ),
        postgresql_with=_AGGREGATE_STORAGE,
    )
    op.create_table(
        "question_embeddings",
        sa.Column("question_id", sa.Integer(), nullable=False),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=1024), nullable=False),
        sa.Column("embedding_model", sa.String(length=128), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "embedded_at",
            sa.TIMESTAMP(),
            server_default=sa.text("timezone('utc', now())"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_question_embeddings_question_id_questions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("question_id", name=op.f("pk_question_embeddings")),
    )


def upgrade() -> None:
    # A session's results are refreshed per (job, applicant): find that pair's sessions.
    op.create_index(
        "ix_interview_sessions_job_id_applicant_id",
        "interview_sessions",
        ["job_id", "applicant_id"],
    )
    op.add_column("interview_results", sa.Column("job_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE interview_results AS r SET job_id = s.job_id"
        " FROM interview_sessions AS s WHERE s.id = r.interview_id"
    )
    op.alter_column("interview_results", "job_id", nullable=False)
    _create_tables()
    for statement in FUNCTIONS:
        op.execute(statement)
    for name, query in VIEWS.items():
        op.execute(f"CREATE VIEW {name} AS {query}")
    op.execute(REFRESH_APPLICANT_FUNCTION)
    for statement in [*SESSION_TRIGGER_FUNCTIONS, *RESULT_TRIGGER_FUNCTIONS, TRUNCATE_FUNCTION]:
        op.execute(statement)
    for name, _table, definition in TRIGGERS:
        op.execute(f"CREATE TRIGGER {name} {definition}")
    # Creating the triggers locked both tables against writes until this migration commits,
    # so nothing can be written between the backfill and the triggers taking over.
    for table, columns in AGGREGATE_COLUMNS.items():
        listed = ", ".join(columns)
        op.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {table}_computed")
    op.execute("ANALYZE " + ", ".join(AGGREGATE_COLUMNS))


def downgrade() -> None:
    for name, table, _definition in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}")
    for function in (
        "truncate_interview_aggregates()",
        "interview_results_track()",
        "interview_results_set_job()",
        "interview_sessions_track()",
        "interview_sessions_keep_owner()",
        "refresh_job_applicant_stats(integer, integer)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    for name in VIEWS:
        op.execute(f"DROP VIEW {name}")
    for function in (
        "question_expected_keywords(jsonb)",
        "interview_result_keyword_set(jsonb)",
        "interview_result_keywords(jsonb)",
        "interview_result_scores(double precision, double precision, double precision,"
        " double precision, double precision)",
        "interview_keyword_key(text)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table("question_embeddings")
    for table in reversed(AGGREGATE_COLUMNS):
        op.drop_table(table)
    op.drop_column("interview_results", "job_id")
    op.drop_index("ix_interview_sessions_job_id_applicant_id", table_name="interview_sessions")
