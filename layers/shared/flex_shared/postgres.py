"""PostgreSQL's own limits, checked before a value reaches the database: a value out of range
is the caller's mistake (a 4xx, a rejected object), never a database error. Imports nothing."""

INT4_MAX = 2_147_483_647
"""The largest ``integer``: every id column, ``company_id``, ``current_question_index``."""
