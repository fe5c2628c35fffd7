"""What the cold-start benchmark found, kept: functions that only run SQL text import neither
sqlalchemy.orm (a tenth of a second of every cold start) nor the ORM models, and the Core
transaction they use instead commits and rolls back like the Session one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from flex_shared import db

REPO_ROOT = Path(__file__).resolve().parents[1]

_IMPORT_AND_LIST = """
import importlib.util, json, sys
name, root = sys.argv[1], sys.argv[2]
folder = root + '/functions/' + name
sys.path[:0] = [folder, root + '/layers/shared']
spec = importlib.util.spec_from_file_location(name + '_app', folder + '/app.py')
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
orm = ('sqlalchemy.orm', 'flex_shared.models')
print(json.dumps(sorted(m for m in sys.modules if m.startswith(orm))))
"""


@pytest.mark.parametrize("function", ["search", "ingest_job", "interview_results"])
def test_loading_a_sql_text_function_does_not_import_the_orm(function: str) -> None:
    env = {**os.environ, "POWERTOOLS_SERVICE_NAME": function}

    completed = subprocess.run(
        [sys.executable, "-c", _IMPORT_AND_LIST, function, str(REPO_ROOT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "[]"


def test_run_in_transaction_commits_on_success(db_engine: Engine) -> None:
    db.run_in_transaction(
        lambda connection: connection.execute(
            text("INSERT INTO jobs (company_id, title, description) VALUES (1, 'kept', 'd')")
        )
    )

    with db_engine.connect() as connection:
        titles = connection.execute(text("SELECT title FROM jobs")).scalars().all()
    assert titles == ["kept"]


def _write_then_fail(connection: Connection) -> None:
    connection.execute(
        text("INSERT INTO jobs (company_id, title, description) VALUES (1, 'lost', 'd')")
    )
    raise RuntimeError("the work failed after the write")


def test_run_in_transaction_rolls_back_on_error(db_engine: Engine) -> None:
    with pytest.raises(RuntimeError, match="after the write"):
        db.run_in_transaction(_write_then_fail)

    with db_engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM jobs")).scalar_one()
    assert count == 0
