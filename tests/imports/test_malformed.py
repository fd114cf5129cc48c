"""The malformed-file corpus: each file in tests/data/imports/malformed has exactly one
fault, listed in manifest.json with the line, field and message it must produce. Every
one must be reported precisely and must change nothing in any table."""

from __future__ import annotations

import json

import pytest

from apps.imports.mapping import mapping_from_dict
from apps.imports.services import file_import
from tests.imports.conftest import MALFORMED, table_state

pytestmark = pytest.mark.django_db

MANIFEST: dict[str, dict] = json.loads((MALFORMED / "manifest.json").read_text())


def test_the_corpus_is_large_and_every_file_is_listed():
    files = {p.name for p in MALFORMED.iterdir() if p.name != "manifest.json"}
    assert files == set(MANIFEST)
    assert len(files) >= 30
    # one distinct fault per file: no two files expect the same message
    assert len({entry["message"] for entry in MANIFEST.values()}) == len(MANIFEST)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_malformed_file_reports_its_fault_and_changes_nothing(crm, name):
    # given a known CRM and a file with one fault
    expected = MANIFEST[name]
    mapping = mapping_from_dict(expected["mapping"]) if "mapping" in expected else None
    before = table_state()
    # when it is imported
    report = file_import(
        kind=expected["kind"],
        data=(MALFORMED / name).read_bytes(),
        filename=name,
        user=crm.admin,
        mapping=mapping,
    )
    # then exactly that fault is reported, where it is, and nothing was written
    assert not report.ok
    assert len(report.errors) == 1, report.errors
    (error,) = report.errors
    assert (error.line, error.field) == (expected["line"], expected["field"]), error
    assert expected["message"] in error.message, error.message
    assert table_state() == before
