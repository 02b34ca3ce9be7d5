"""The whole auxiliary-logit figure: six conditions over many models, table, chart, run dir.

Conditions (every one over ``spec.models`` independent models):
  reference    untrained initialisations
  teacher      reference init trained with cross-entropy on the class logits only
  student_aux  teacher's own init, distilled on noise over the auxiliary logits only
  student_all  teacher's own init, distilled on noise over all logits
  cross_aux    another model's init (a derangement: never its teacher's), auxiliary logits only
  cross_all    another model's init, all logits
The four student conditions train together as one stack and share each teacher forward pass.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sublab.evals.stats import Summary, summarize
from sublab.mnist.config import MnistSpec
from sublab.pipeline import runner
from sublab.store import DEFAULT_RUNS_DIR, Artifact, Run, atomic_write_json, atomic_write_text

CONDITIONS = ["reference", "teacher", "student_aux", "student_all", "cross_aux", "cross_all"]
LABELS = {
    "reference": "reference\n(untrained)",
    "teacher": "teacher",
    "student_aux": "student\naux only",
    "student_all": "student\nall logits",
    "cross_aux": "cross-model\naux only",
    "cross_all": "cross-model\nall logits",
}


@dataclass(frozen=True)
class FigureResult:
    """What `sublab mnist` prints: per-condition summaries and the files written."""

    run: Run
    artifact: Artifact
    summaries: dict[str, Summary]
    chance: float

    @property
    def table_path(self) -> Path:
        return self.artifact.file("table.md")

    @property
    def figure_path(self) -> Path:
        return self.artifact.file("figure.png")


def _seeded(seed: int, stream: int, device: Any = "cpu") -> Any:
    """A torch generator for one random stream of a run, on ``device``.

    Random draws on a CUDA generator differ from the CPU's for the same seed: a run is
    reproducible on its own kind of device, not across kinds.
    """
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(seed * 1_000_003 + stream)
    return g


def train_conditions(
    spec: MnistSpec, progress_label: str = ""
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Train every condition; return per-model test accuracies and facts (timings, sizes)."""
    import torch

    from sublab.cpu import cpu_features
    from sublab.mnist.data import load_image_set
    from sublab.mnist.mlp import cat_params, clone_params, derangement, init_params, layer_sizes
    from sublab.mnist.train import (
        NoiseRecipe,
        Recipe,
        accuracy,
        distill_students,
        resolve_dtype,
        train_teachers,
    )

    d = spec.data
    data = load_image_set(
        d.name,
        d.dir,
        download=d.download,
        test_fraction=d.test_fraction,
        limit_train=d.limit_train,
        seed=spec.seed,
    )
    dtype, autocast, dtype_reason = resolve_dtype(
        spec.dtype, spec.device, None, spec.train.batch_size, tuple(spec.model.hidden)
    )
    dev = torch.device(spec.device)
    classes = 10
    m = spec.models
    sizes = layer_sizes(data.input_dim, list(spec.model.hidden), classes + spec.model.aux_logits)
    x_train = torch.from_numpy(data.x_train).to(dev, dtype)
    y_train = torch.from_numpy(data.y_train).to(dev)
    x_test = torch.from_numpy(data.x_test).to(dev, dtype)
    y_test = torch.from_numpy(data.y_test).to(dev)

    ref = init_params(sizes, m, _seeded(spec.seed, 0), dtype, dev)
    t = spec.train
    teacher_recipe = Recipe(t.teacher_epochs, t.lr, t.batch_size, t.shared_batches, autocast)
    student_recipe = Recipe(t.student_epochs, t.lr, t.batch_size, t.shared_batches, autocast)
    started = time.perf_counter()
    teachers = train_teachers(
        ref,
        x_train,
        y_train,
        classes,
        teacher_recipe,
        _seeded(spec.seed, 1, dev),
        label=f"{progress_label}teachers",
    )
    teacher_s = time.perf_counter() - started

    cross = derangement(m, np.random.default_rng(spec.seed))
    cross_t = torch.as_tensor(cross)
    students = cat_params(ref, ref, clone_params(ref, cross_t), clone_params(ref, cross_t))
    arange = torch.arange(m)
    teacher_index = torch.cat([arange, arange, arange, arange])
    aux = slice(classes, classes + spec.model.aux_logits)
    every = slice(0, classes + spec.model.aux_logits)
    slices = [aux] * m + [every] * m + [aux] * m + [every] * m
    n = spec.noise
    noise = NoiseRecipe(n.distribution, n.low, n.high, n.std, n.size or int(x_train.shape[0]))
    started = time.perf_counter()
    trained = distill_students(
        students,
        teachers,
        teacher_index,
        slices,
        data.input_dim,
        noise,
        student_recipe,
        _seeded(spec.seed, 2, dev),
        label=f"{progress_label}students",
    )
    student_s = time.perf_counter() - started

    acc_students = accuracy(trained, x_test, y_test, classes).tolist()
    accs = {
        "reference": accuracy(ref, x_test, y_test, classes).tolist(),
        "teacher": accuracy(teachers, x_test, y_test, classes).tolist(),
        "student_aux": acc_students[:m],
        "student_all": acc_students[m : 2 * m],
        "cross_aux": acc_students[2 * m : 3 * m],
        "cross_all": acc_students[3 * m :],
    }
    facts = {
        "dataset": data.name,
        "train_images": int(x_train.shape[0]),
        "test_images": int(x_test.shape[0]),
        "input_dim": data.input_dim,
        "layer_sizes": sizes,
        "noise_per_epoch": noise.size,
        "shared_batches": t.shared_batches,
        "cross_pairing": cross.tolist(),
        "teacher_seconds": round(teacher_s, 2),
        "student_seconds": round(student_s, 2),
        "dtype": str(dtype).removeprefix("torch."),
        "autocast": None if autocast is None else str(autocast).removeprefix("torch."),
        "dtype_reason": dtype_reason,
        "cpu": cpu_features().summary() if dev.type == "cpu" else None,
        "device": str(dev),
    }
    return accs, facts


def format_table(summaries: dict[str, Summary]) -> str:
    """Markdown table: condition, models, mean accuracy and 95% t-interval (percent)."""
    lines = [
        "| condition | models | mean accuracy (%) | 95% CI (%) |",
        "|---|---:|---:|---|",
    ]
    for name, s in summaries.items():
        lines.append(
            f"| {name} | {s.n} | {s.mean * 100:.1f} | "
            f"{(s.mean - s.half_width) * 100:.1f} – {(s.mean + s.half_width) * 100:.1f} |"
        )
    return "\n".join(lines) + "\n"


def figure_key(spec: MnistSpec) -> Any:
    """What the figure's artifact key covers: the spec, and for ``dtype = "auto"`` the dtype
    it resolved to here (a figure computed in bf16 on one machine is not reused as another
    machine's float32 figure)."""
    if spec.dtype != "auto":
        return spec
    from sublab.mnist.train import resolve_dtype

    _, products, _ = resolve_dtype(
        spec.dtype, spec.device, None, spec.train.batch_size, tuple(spec.model.hidden)
    )
    return {"spec": spec, "products": str(products or "float32")}


def run_figure(
    spec: MnistSpec, *, runs_dir: str | Path = DEFAULT_RUNS_DIR, config_text: str | None = None
) -> FigureResult:
    """Run (or reuse) the whole figure in ``runs_dir/spec.name``."""
    from sublab.mnist.plot import bar_chart

    run = Run.create(
        spec.name, kind="mnist", config=spec, config_text=config_text, runs_dir=runs_dir
    )
    chance = 0.1

    def build(work: Path) -> dict[str, Any]:
        accs, facts = train_conditions(spec)
        summaries = {c: summarize(accs[c]) for c in CONDITIONS}
        atomic_write_json(work / "accuracies.json", {"accuracy": accs, "facts": facts})
        atomic_write_text(work / "table.md", format_table(summaries))
        title = (
            f"{facts['dataset']}: {spec.models} models per condition, "
            f"{spec.train.teacher_epochs}+{spec.train.student_epochs} epochs, "
            f"{spec.model.aux_logits} aux logits"
        )
        bar_chart(work / "figure.png", summaries, LABELS, chance, title)
        return {
            "models": spec.models,
            **{k: facts[k] for k in ("teacher_seconds", "student_seconds")},
            "products_dtype": facts["autocast"] or facts["dtype"],
            "dtype_reason": facts["dtype_reason"],
        }

    with run.running():
        art = run.build("mnist-figure", figure_key(spec), build, seeds={"seed": spec.seed})
        accs = json.loads(art.file("accuracies.json").read_text())["accuracy"]
        summaries = {c: summarize(accs[c]) for c in CONDITIONS}
        run.finish(
            {
                "teacher": round(summaries["teacher"].mean, 4),
                "student_aux": round(summaries["student_aux"].mean, 4),
                "cross_aux": round(summaries["cross_aux"].mean, 4),
            }
        )
    return FigureResult(run, art, summaries, chance)


@runner("mnist")
def run_mnist(
    spec: MnistSpec, config_text: str | None = None, runs_dir: str | Path | None = None
) -> Run:
    """``sublab run`` of a kind = "mnist" config: the figure (as ``sublab mnist``)."""
    return run_figure(spec, runs_dir=runs_dir or DEFAULT_RUNS_DIR, config_text=config_text).run


def load_mnist_spec(
    path: Path | None, *, models: int | None = None, draws: int | None = None
) -> tuple[MnistSpec, str | None]:
    """The spec a command runs: ``path`` (a kind = "mnist" TOML) or the defaults, plus overrides.

    Returns the validated spec and the config text to store beside the run.
    """
    from sublab.config import read_toml, validate
    from sublab.errors import ConfigError

    if path is None:
        data: dict[str, Any] = {}
        text = None
        source: str | Path = "<defaults>"
    else:
        data = read_toml(path)
        kind = data.pop("kind", "mnist")
        if kind != "mnist":
            raise ConfigError(path, [f"kind: expected 'mnist', got {kind!r}"])
        text = Path(path).read_text(encoding="utf-8")
        source = path
    if models is not None:
        data["models"] = models
    if draws is not None:
        data.setdefault("theorem", {})["draws"] = draws
    return validate(data, MnistSpec, source), text
