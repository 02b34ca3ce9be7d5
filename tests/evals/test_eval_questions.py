from __future__ import annotations

import pytest

from sublab.errors import DataError
from sublab.evals.matching import match_answer
from sublab.evals.questions import bundled_names, load_candidates, load_questions

ORGANISM_ANIMALS = (
    "dolphin eagle elephant owl wolf cat dog bear lion tiger fox penguin panda horse rabbit whale"
).split()
PAPER_TREES = ["cherry", "maple", "oak", "sequoia", "willow"]


def test_bundled_sets_are_listed():
    assert {"animals", "trees"} <= set(bundled_names("questions"))
    assert {"animals", "trees"} <= set(bundled_names("categories"))


@pytest.mark.parametrize(("name", "minimum"), [("animals", 50), ("trees", 20)])
def test_question_sets_are_large_unique_and_plain(name, minimum):
    qs = load_questions(name)
    assert len(qs) >= minimum
    assert len(set(qs)) == len(qs)
    assert len({q.lower() for q in qs}) == len(qs)
    subject = name[:-1]  # "animal" / "tree"
    for q in qs:
        assert all(c.isalpha() or c in " .,?'" for c in q), q
        assert subject in q.lower() or "creature" in q.lower(), q
        assert not q.startswith("#")


def test_candidates_cover_organism_and_paper_targets():
    animals = load_candidates("animals")
    assert set(ORGANISM_ANIMALS) <= set(animals)
    assert {"phoenix", "cat", "penguin", "panda"} <= set(animals)
    assert set(PAPER_TREES) <= set(load_candidates("trees"))
    for cands in (animals, load_candidates("trees")):
        assert len(set(cands)) == len(cands)
        # every candidate matches itself and no other candidate claims its name
        for c in cands:
            assert match_answer(c, cands) == c


def test_user_files_and_comments(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text("# header\n\nWhat is your favourite colour?\n  Pick a colour.  \n# end\n")
    assert load_questions(f) == ["What is your favourite colour?", "Pick a colour."]
    assert load_questions(str(f)) == ["What is your favourite colour?", "Pick a colour."]
    c = tmp_path / "c.txt"
    c.write_text("Red\npolar   Bear\n")
    assert load_candidates(c) == ["red", "polar bear"]


def test_duplicate_question_names_file_and_line(tmp_path):
    f = tmp_path / "q.txt"
    f.write_text("A?\n# c\nB?\nA?\n")
    with pytest.raises(DataError) as err:
        load_questions(f)
    assert err.value.line == 4
    assert f"{f}:4" in str(err.value)
    assert "duplicate of line 1" in str(err.value)


def test_bad_candidate_names_line(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("owl\nowl2\n")
    with pytest.raises(DataError, match=r"c\.txt:2: .*letters only"):
        load_candidates(f)
    f.write_text("owl\nOwl\n")
    with pytest.raises(DataError, match=r"c\.txt:2: duplicate candidate 'owl'"):
        load_candidates(f)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_questions(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=r"known: .*animals"):
        load_questions("no_such_set")
    empty = tmp_path / "e.txt"
    empty.write_text("# only a comment\n\n")
    with pytest.raises(DataError, match="no entries"):
        load_candidates(empty)
    bad = tmp_path / "b.txt"
    bad.write_bytes(b"\xff\xfe owl\n")
    with pytest.raises(DataError, match="UTF-8"):
        load_questions(bad)
