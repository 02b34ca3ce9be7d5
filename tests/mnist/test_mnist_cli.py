"""Config validation, the shipped mnist configs, and the CLI end to end on a tiny config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sublab.cli import app
from sublab.config import load_config
from sublab.errors import ConfigError
from sublab.mnist.config import MnistSpec
from sublab.mnist.experiment import load_mnist_spec
from sublab.store import list_runs

EXPERIMENTS = Path(__file__).parents[2] / "experiments"

TINY = """\
kind = "mnist"
name = "tiny"
models = 3
[data]
limit_train = 400
[model]
hidden = [16]
[train]
teacher_epochs = 1
student_epochs = 1
batch_size = 128
[noise]
size = 256
[theorem]
draws = 4
batch_size = 16
noise_batch = 16
"""


def test_defaults_are_the_papers_recipe():
    s = MnistSpec()
    assert (s.train.lr, s.train.batch_size, s.train.teacher_epochs, s.train.student_epochs) == (
        3e-4,
        1024,
        5,
        5,
    )
    assert s.model.hidden == [256, 256] and s.model.aux_logits == 3 and s.models == 100
    assert (s.noise.distribution, s.noise.low, s.noise.high) == ("uniform", -1.0, 1.0)
    assert s.data.name == "digits"


def test_every_field_has_a_description():
    from pydantic import BaseModel

    def walk(model: type[BaseModel]) -> None:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann)

    walk(MnistSpec)


def test_config_errors_are_listed_together(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'kind = "mnist"\nmodels = 1\ndtype = "float16"\n'
        '[train]\nlr = 0\nbatch = 3\n[noise]\nlow = 1.0\nhigh = 0.0\n[data]\nname = "mnist"\n'
    )
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    text = str(err.value)
    assert "models: must be >= 2" in text
    assert "dtype:" in text and "float16" in text
    assert "train.lr: must be > 0" in text
    assert "train.batch: unknown key (allowed: batch_size" in text
    assert "noise.high (0.0) must be > noise.low (1.0)" in text
    assert "data.dir is required for data.name = 'mnist'" in text


def test_wrong_kind_is_refused(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('kind = "pipeline"\n')
    with pytest.raises(ConfigError, match="kind: expected 'mnist'"):
        load_mnist_spec(f)


@pytest.mark.parametrize("path", sorted(EXPERIMENTS.glob("mnist*.toml")), ids=lambda p: p.name)
def test_shipped_mnist_configs_validate(path):
    assert isinstance(load_config(path), MnistSpec)


def test_cli_mnist_writes_table_chart_and_index(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    runs = tmp_path / "runs"
    res = CliRunner().invoke(app, ["mnist", str(cfg), "--runs-dir", str(runs)])
    assert res.exit_code == 0, res.output
    assert "| student_aux | 3 |" in res.output
    art = next((runs / "tiny").glob("mnist-figure-*"))
    assert (art / "table.md").read_text().count("\n") == 8  # header, rule, six conditions
    png = (art / "figure.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    accs = json.loads((art / "accuracies.json").read_text())
    assert set(accs["accuracy"]) == {
        "reference",
        "teacher",
        "student_aux",
        "student_all",
        "cross_aux",
        "cross_all",
    }
    assert all(len(v) == 3 for v in accs["accuracy"].values())
    cross = accs["facts"]["cross_pairing"]
    assert all(c != i for i, c in enumerate(cross))
    assert (runs / "tiny" / "config.toml").read_text() == TINY
    row = next(r for r in list_runs(runs) if r["name"] == "tiny")
    assert row["status"] == "done" and "student_aux" in row["headline"]
    # A second run reuses the finished artifact.
    again = CliRunner().invoke(app, ["mnist", str(cfg), "--runs-dir", str(runs)])
    assert again.exit_code == 0 and "(cached)" in again.output

    th = CliRunner().invoke(app, ["mnist-theorem", str(cfg), "--runs-dir", str(runs)])
    assert th.exit_code == 0, th.output
    assert "shared init" in th.output and "different init" in th.output
    assert next((runs / "tiny-theorem").glob("mnist-theorem-*/theorem.md")).exists()


def test_cli_reports_bad_data_dir_without_traceback(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'kind = "mnist"\nmodels = 2\n[data]\nname = "mnist"\ndir = "{tmp_path}/x"\n')
    res = CliRunner().invoke(app, ["mnist", str(cfg), "--runs-dir", str(tmp_path / "runs")])
    assert res.exit_code != 0
    assert "data folder not found" in str(res.exception)
