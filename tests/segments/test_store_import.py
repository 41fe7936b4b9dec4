"""`mo segments import`: definition files into the one definition store, a file's edit as a new version, and
a segment edited through the API kept (the file is skipped and named)."""

from __future__ import annotations

import json
import shutil

from mo.segments.definitions import EXAMPLES_DIR, parse_definition


def test_import_creates_versions_and_never_reverts_an_api_edit(mo_home, tmp_path, capsys):
    from mo.cli import main
    from mo.config import get_settings
    from mo.oltp.db import make_engine, migrate
    from mo.segments import store as segment_store

    engine = make_engine(get_settings().resolved_source_url)
    migrate(engine)
    folder = tmp_path / "defs"
    folder.mkdir()
    for name in ("young-urban.json", "recent-claimants.json"):
        shutil.copy(EXAMPLES_DIR / name, folder)
    assert main(["segments", "import", str(folder)]) == 0
    created = sorted(capsys.readouterr().out.split("\n")[:2])
    assert created == ["recent-claimants: created v1", "young-urban: created v1"]

    changed = json.loads((folder / "young-urban.json").read_text())
    changed["rule"]["all"][0]["value"] = 28
    (folder / "young-urban.json").write_text(json.dumps(changed))
    assert main(["segments", "import", str(folder)]) == 0
    assert "young-urban: new version v2" in capsys.readouterr().out

    with engine.begin() as conn:  # what POST /v1/segments/{id}/versions does
        edited = parse_definition({**changed, "name": "Young urban (marketing's edit)"})
        segment_store.save_version(conn, edited, created_by="user:marketer")
    changed["rule"]["all"][0]["value"] = 25
    (folder / "young-urban.json").write_text(json.dumps(changed))
    assert main(["segments", "import", str(folder)]) == 0
    assert "young-urban: skipped (edited through the API since" in capsys.readouterr().out
    with engine.connect() as conn:
        latest = segment_store.get_version(conn, "young-urban")
    assert (latest.version, latest.definition.name) == (3, "Young urban (marketing's edit)")
    engine.dispose()
