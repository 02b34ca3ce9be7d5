"""One-step check of Theorem 1 (Cloud, Le et al. 2025) on the experiment's MLP.

From shared parameters θ0, the teacher takes one small SGD step on its own loss (cross-entropy
on the class logits of a real batch): Δ_T = -ε ∇L_T(θ0). A student at θ0 takes one imitation
step on the teacher's outputs for random (noise) inputs: Δ_S = -∇ KL(f_{θ0+Δ_T} ‖ f_θ). To first
order in ε, Δ_S · Δ_T ≥ 0 when the student starts at θ0; a student from a different
initialisation has no such guarantee. We report cos(Δ_T, Δ_S) over many independent draws, for
imitation on all logits and on the auxiliary logits only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sublab.evals.stats import Summary, summarize
from sublab.mnist.config import MnistSpec
from sublab.store import DEFAULT_RUNS_DIR, Artifact, Run, atomic_write_json, atomic_write_text

CASES = ["shared_all", "shared_aux", "different_all", "different_aux"]


@dataclass(frozen=True)
class TheoremResult:
    """Cosines per case, their summaries, and the run artifact holding them."""

    run: Run
    artifact: Artifact
    summaries: dict[str, Summary]
    positive: dict[str, float]


def step_cosines(spec: MnistSpec) -> dict[str, list[float]]:
    """cos(Δ_T, Δ_S) per draw for each case in CASES."""
    import torch
    import torch.nn.functional as F

    from sublab.mnist.data import load_image_set
    from sublab.mnist.mlp import clone_params, derangement, forward, init_params, layer_sizes
    from sublab.mnist.train import sample_noise

    th, d = spec.theorem, spec.data
    data = load_image_set(
        d.name,
        d.dir,
        download=d.download,
        test_fraction=d.test_fraction,
        limit_train=d.limit_train,
        seed=spec.seed,
    )
    dev = torch.device(spec.device)
    dtype = torch.float64 if spec.dtype == "float64" else torch.float32
    classes, m = 10, th.draws
    sizes = layer_sizes(data.input_dim, list(spec.model.hidden), classes + spec.model.aux_logits)
    g = torch.Generator().manual_seed(spec.seed)
    theta0 = init_params(sizes, m, g, dtype, dev)

    # Teacher: one SGD step on cross-entropy of a real batch (its own batch per draw).
    idx = torch.argsort(torch.rand(m, data.x_train.shape[0], generator=g), dim=1)[
        :, : th.batch_size
    ]
    x = torch.from_numpy(data.x_train).to(dev, dtype)[idx]
    y = torch.from_numpy(data.y_train).to(dev)[idx]
    params = [p.clone().requires_grad_(True) for p in theta0]
    logits = forward(params, x)[..., :classes]
    loss = F.cross_entropy(logits.reshape(-1, classes), y.reshape(-1), reduction="sum") / x.shape[1]
    grads = torch.autograd.grad(loss, params)
    delta_t = [-th.teacher_lr * gr for gr in grads]
    teacher = [p + dp for p, dp in zip(theta0, delta_t, strict=True)]

    noise = sample_noise(
        spec.noise.distribution,
        (m, th.noise_batch, data.input_dim),
        spec.noise.low,
        spec.noise.high,
        spec.noise.std,
        g,
    ).to(dev, dtype)
    with torch.no_grad():
        t_out = forward(teacher, noise)
    other = torch.as_tensor(derangement(m, np.random.default_rng(spec.seed)))
    starts = {"shared": theta0, "different": clone_params(theta0, other)}
    spans = {"all": slice(0, None), "aux": slice(classes, None)}
    flat_t = torch.cat([dp.reshape(m, -1) for dp in delta_t], dim=1)
    out: dict[str, list[float]] = {}
    for start_name, start in starts.items():
        for span_name, span in spans.items():
            student = [p.clone().requires_grad_(True) for p in start]
            s_log = F.log_softmax(forward(student, noise)[..., span], dim=-1)
            t_log = F.log_softmax(t_out[..., span], dim=-1)
            kl = (t_log.exp() * (t_log - s_log)).sum() / th.noise_batch
            s_grads = torch.autograd.grad(kl, student)
            flat_s = torch.cat([-gr.reshape(m, -1) for gr in s_grads], dim=1)
            cos = F.cosine_similarity(flat_t, flat_s, dim=1)
            out[f"{start_name}_{span_name}"] = cos.double().cpu().tolist()
    return out


def format_theorem_table(summaries: dict[str, Summary], positive: dict[str, float]) -> str:
    lines = [
        "| student start | imitated logits | draws | mean cos(Δ_T, Δ_S) | 95% CI | share > 0 |",
        "|---|---|---:|---:|---|---:|",
    ]
    for case, s in summaries.items():
        start, span = case.split("_")
        lines.append(
            f"| {start} init | {span} | {s.n} | {s.mean:+.4f} | "
            f"{s.mean - s.half_width:+.4f} – {s.mean + s.half_width:+.4f} "
            f"| {positive[case] * 100:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def run_theorem(
    spec: MnistSpec, *, runs_dir: str | Path = DEFAULT_RUNS_DIR, config_text: str | None = None
) -> TheoremResult:
    """Run the Theorem 1 check into ``runs_dir/<spec.name>-theorem``."""
    run = Run.create(
        f"{spec.name}-theorem",
        kind="mnist",
        config=spec,
        config_text=config_text,
        runs_dir=runs_dir,
    )
    stage_spec = {
        "theorem": spec.theorem,
        "model": spec.model,
        "data": spec.data,
        "noise": spec.noise,
        "seed": spec.seed,
        "dtype": spec.dtype,
    }

    def build(work: Path) -> dict[str, Any]:
        cos = step_cosines(spec)
        summaries = {c: summarize(cos[c]) for c in CASES}
        positive = {c: float(np.mean(np.array(cos[c]) > 0)) for c in CASES}
        atomic_write_json(work / "cosines.json", cos)
        atomic_write_text(work / "theorem.md", format_theorem_table(summaries, positive))
        return {"draws": spec.theorem.draws}

    with run.running():
        art = run.build("mnist-theorem", stage_spec, build, seeds={"seed": spec.seed})
        cos = json.loads(art.file("cosines.json").read_text())
        summaries = {c: summarize(cos[c]) for c in CASES}
        positive = {c: float(np.mean(np.array(cos[c]) > 0)) for c in CASES}
        run.finish(
            {
                "cos_shared_all": round(summaries["shared_all"].mean, 4),
                "cos_different_all": round(summaries["different_all"].mean, 4),
            }
        )
    return TheoremResult(run, art, summaries, positive)
