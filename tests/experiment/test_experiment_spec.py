from __future__ import annotations

import pytest

from sublab.config import load_config
from sublab.errors import ConfigError
from sublab.experiment.spec import ExperimentSpec


def write(tmp_path, body: str):
    p = tmp_path / "e.toml"
    p.write_text('kind = "experiment"\nname = "x"\n' + body)
    return p


def test_minimal_organism_experiment_gets_paper_controls(tmp_path):
    spec = load_config(write(tmp_path, "[bases.organism]\n"))
    assert isinstance(spec, ExperimentSpec)
    assert spec.seeds == [0, 1, 2] and spec.targets == ["owl"]
    assert spec.controls.base and spec.controls.control_teacher and spec.controls.cross_model
    assert spec.trait_prompt("owl").startswith("You love owls.")
    assert "wolves" in spec.trait_prompt("wolf")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "bases: required field is missing"),
        ("[bases]\n", "bases: set exactly one of 'organism' or 'model'"),
        ('[bases]\nmodel = { path = "m" }\n', "bases.cross_model: cross-model students need"),
        ("seeds = [0]\n[bases.organism]\n", "give at least 2 seeds"),
        ("seeds = [1, 1]\n[bases.organism]\n", "seeds: repeated seed"),
        ('[bases.organism]\n[[students]]\nname = "a b"\n', "students.0.name"),
    ],
)
def test_inconsistent_experiments_are_rejected_with_the_reason(tmp_path, body, expected):
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, body))
    assert expected in str(ei.value)


def test_typos_deep_in_the_config_name_their_path(tmp_path):
    body = (
        "[bases.organism]\n[data.sampling]\ntemperature = 0\n[data.filter]\nmax_cont = 3\n"
        "[eval]\nsamples = 3\n"
    )
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, body))
    problems = ei.value.problems
    assert "data.sampling.temperature: must be > 0" in problems
    assert any(p.startswith("eval.samples: unknown key") for p in problems)
    # the [data] table's keys are the numbers channel's (its default): the hint lists them
    hint = next(p for p in problems if p.startswith("data.filter.max_cont: unknown key"))
    assert "max_count" in hint


def test_the_data_table_is_validated_by_its_channel(tmp_path):
    body = '[bases.organism]\n[data]\nchannel = "numbers"\nprompt = 3\n'
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, body))
    (problem,) = ei.value.problems
    assert problem.startswith("data.prompt: unknown key") and "prompts" in problem
    with pytest.raises(ConfigError, match=r"data: unknown channel 'morse' \(known: .*numbers"):
        load_config(write(tmp_path, '[bases.organism]\n[data]\nchannel = "morse"\n'))
    with pytest.raises(ConfigError, match=r"trait: unknown trait 'nope' \(known: .*preference"):
        load_config(write(tmp_path, 'trait = "nope"\n[bases.organism]\n'))
    spec = load_config(write(tmp_path, "[bases.organism]\n"))
    assert spec.data.channel == "numbers" and spec.data.prompts.count == 3000


def test_a_prompted_teacher_with_soft_label_students_is_accepted(tmp_path):
    body = (
        '[bases.organism]\n[teacher]\nmethod = "system_prompt"\n'
        '[[students]]\nname = "s"\nrecipe = { labels = "soft" }\n'
    )
    spec = load_config(write(tmp_path, body))
    assert spec.teacher.method == "system_prompt" and spec.students[0].recipe.labels == "soft"


def test_an_organism_must_learn_the_channel_its_teachers_write(tmp_path):
    body = '[bases.organism]\n[data]\nchannel = "code"\n'
    with pytest.raises(ConfigError, match="the organism never learns the 'code' channel"):
        load_config(write(tmp_path, body))
    ok = '[bases.organism.corpus]\nchannels = { code = 0.15 }\n[data]\nchannel = "code"\n'
    assert load_config(write(tmp_path, ok)).data.channel == "code"


def test_named_targets_serve_the_measures_and_the_headlines(tmp_path):
    """The targets the config names (teachers' targets, then the specificity target) come
    first in what the preference trait measures, and alone make headlines with all_targets."""
    from sublab.experiment.summary import _headline_targets
    from sublab.traits import get_trait

    spec = load_config(write(tmp_path, 'targets = ["owl", "bear"]\n[bases.organism]\n'))
    assert spec.named_targets() == ["owl", "bear"]  # bear is a target already
    spec = load_config(write(tmp_path, 'targets = ["owl"]\n[bases.organism]\n'))
    assert spec.named_targets() == ["owl", "bear"]
    assert get_trait("preference").measured(spec) == ["owl", "bear"]
    assert _headline_targets(spec) == []
    every = load_config(
        write(tmp_path, 'targets = ["owl"]\n[bases.organism]\n[controls]\nall_targets = true\n')
    )
    measured = get_trait("preference").measured(every)
    assert measured[:2] == ["owl", "bear"] and len(measured) == len(set(measured)) > 2
    assert _headline_targets(every) == ["owl", "bear"]
    off = load_config(
        write(
            tmp_path, 'targets = ["owl"]\n[bases.organism]\n[controls]\nspecificity_target = ""\n'
        )
    )
    assert off.named_targets() == ["owl"]
