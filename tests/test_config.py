from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, ValidationError

from sublab.config import CONFIG_KINDS, Spec, config_kind, load_config
from sublab.errors import ConfigError


class Sampling(Spec):
    temperature: float = Field(1.0, gt=0)
    max_tokens: int = Field(64, ge=1)


class Teacher(Spec):
    model: str
    sampling: Sampling = Sampling()


@config_kind("_test_toy")
class Toy(Spec):
    name: str
    teacher: Teacher


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_valid_config_loads(tmp_path):
    p = write(tmp_path, 'kind = "_test_toy"\nname = "a"\n[teacher]\nmodel = "m"\n')
    spec = load_config(p)
    assert isinstance(spec, Toy)
    assert spec.teacher.sampling.temperature == 1.0


def test_every_problem_reported_with_path(tmp_path):
    p = write(
        tmp_path,
        'kind = "_test_toy"\n[teacher]\nmodel = 3\nbogus = 1\n'
        "[teacher.sampling]\ntemperature = 0\nmax_tokens = 'x'\n",
    )
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    problems = ei.value.problems
    text = str(ei.value)
    assert str(p) in text
    assert "name: required field is missing" in problems
    assert "teacher.sampling.temperature: must be > 0" in problems
    assert any(x.startswith("teacher.model:") for x in problems)
    assert any(x.startswith("teacher.sampling.max_tokens:") and "'x'" in x for x in problems)
    bogus = [x for x in problems if x.startswith("teacher.bogus")]
    assert bogus and "unknown key" in bogus[0] and "sampling" in bogus[0]
    assert len(problems) == 5


def test_toml_syntax_error_names_line(tmp_path):
    p = write(tmp_path, 'kind = "_test_toy"\nname = \n')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "line 2" in str(ei.value)


def test_missing_and_unknown_kind(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="kind: required"):
        load_config(write(tmp_path, 'name = "x"\n'))
    with pytest.raises(ConfigError, match="unknown kind 'zzz'"):
        load_config(write(tmp_path, 'kind = "zzz"\n'))


def test_specs_are_immutable():
    t = Teacher(model="m")
    with pytest.raises(ValidationError):
        t.model = "n"  # type: ignore[misc]
    assert "_test_toy" in CONFIG_KINDS


def test_keyless_fields_stay_out_of_dumps_at_their_defaults():
    """Fields added after a spec keyed cached artifacts leave its dump (and every key) alone
    until they are set."""
    from sublab.backends.base import BackendSettings, SamplingSpec
    from sublab.backends.grammar import NumberGrammar
    from sublab.experiment.spec import TeacherSpec
    from sublab.store import hash_obj

    assert "grammar" not in SamplingSpec().model_dump()
    assert SamplingSpec(grammar=NumberGrammar()).model_dump()["grammar"]["kind"] == "numbers"
    assert "eval_dtype" not in BackendSettings().model_dump()
    plain = TeacherSpec().model_dump()
    assert "strength_rows" not in plain and "control_answers" not in plain
    assert TeacherSpec(strength_rows=64).model_dump()["strength_rows"] == 64
    assert hash_obj(TeacherSpec(strength_rows=1000)) == hash_obj(TeacherSpec())
