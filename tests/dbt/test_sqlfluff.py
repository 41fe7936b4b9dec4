"""sqlfluff passes on every dbt model (dbt/.sqlfluff: sparksql dialect, jinja templater, no Spark needed).

One lint run per test module; each model folder is its own test so a failure names the folder that owns it.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from mo.config import REPO_ROOT

DBT = REPO_ROOT / "dbt"
MODELS = DBT / "models"
FOLDERS = sorted({str(p.parent.relative_to(MODELS)) for p in MODELS.rglob("*.sql")})


@pytest.fixture(scope="module")
def violations_by_folder() -> dict[str, list[str]]:
    sqlfluff = pytest.importorskip("sqlfluff.core", reason="sqlfluff is not installed (dev dependency)")
    config = sqlfluff.FluffConfig.from_path(str(DBT))
    result = sqlfluff.Linter(config=config).lint_paths((str(MODELS),))
    found: dict[str, list[str]] = defaultdict(list)
    for path_result in result.paths:
        for linted_file in path_result.files:
            path = Path(linted_file.path).resolve()
            folder = str(path.parent.relative_to(MODELS.resolve()))
            for v in linted_file.get_violations():
                found[folder].append(f"{path.name}:{v.line_no}:{v.line_pos} {v.rule_code()} {v.desc()}")
    return found


@pytest.mark.parametrize("folder", FOLDERS)
def test_models_pass_sqlfluff(violations_by_folder, folder):
    problems = violations_by_folder.get(folder, [])
    assert not problems, f"sqlfluff in dbt/models/{folder}:\n" + "\n".join(problems)
