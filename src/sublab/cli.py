"""The ``sublab`` command: parse arguments, call the library, print results."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from sublab.config import kind_of, load_config
from sublab.errors import SublabError
from sublab.store import DEFAULT_RUNS_DIR, list_runs

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="sublab: reproduce, vary and audit subliminal learning.",
)
out = Console()

RunsDir = Annotated[Path, typer.Option("--runs-dir", help="Folder that holds run directories.")]
ApiBase = Annotated[
    str | None,
    typer.Option(
        "--api-base",
        help="OpenAI-compatible API base URL (e.g. https://api.openai.com/v1); "
        "--model is then the API's model name.",
    ),
]
ApiKeyEnv = Annotated[
    str, typer.Option("--api-key-env", help="NAME of the env variable holding the API key.")
]
MaxConcurrency = Annotated[
    int, typer.Option("--max-concurrency", help="API requests in flight at once.")
]


def print_error(err: SublabError) -> None:
    """One error on stderr; soft_wrap never breaks a file:line location across lines."""
    Console(stderr=True).print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Inside a command: a SublabError is printed and the command exits with status 2."""
    try:
        yield
    except SublabError as err:
        print_error(err)
        raise typer.Exit(2) from None


@app.command()
def check(files: Annotated[list[Path], typer.Argument(help="TOML config files.")]) -> None:
    """Validate config files without running anything; report every problem."""
    failed = 0
    for f in files:
        try:
            spec = load_config(f)
        except SublabError as err:
            failed += 1
            out.print(f"[red]✗[/red] {err}")
            continue
        out.print(f"[green]✓[/green] {f} (kind = {kind_of(spec)!r})")
    if failed:
        raise typer.Exit(2)


@app.command()
def runs(runs_dir: RunsDir = DEFAULT_RUNS_DIR) -> None:
    """List runs with their status and headline figures."""
    rows = list_runs(runs_dir)
    if not rows:
        out.print(f"no runs under {runs_dir}/")
        return
    table = Table("name", "kind", "status", "updated", "headline")
    for r in rows:
        head = ", ".join(f"{k}={v}" for k, v in r["headline"].items())
        table.add_row(r["name"], r["kind"], r["status"], r["updated"], head)
    out.print(table)


@app.command("filter")
def filter_(
    input_path: Annotated[Path, typer.Argument(help="JSONL: prompt/completion or chat rows.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: IN.filtered/).")
    ] = None,
    banned: Annotated[
        list[str] | None,
        typer.Option("--banned", help="Banned list: shipped name (paper-negative) or file path."),
    ] = None,
    field: Annotated[
        str, typer.Option(help="Field with the completion (chat rows: last assistant message).")
    ] = "completion",
    config: Annotated[
        Path | None, typer.Option(help="TOML with FilterSpec fields; flags override it.")
    ] = None,
    min_count: Annotated[int | None, typer.Option(help="Fewest numbers kept [1].")] = None,
    max_count: Annotated[int | None, typer.Option(help="Most numbers kept [10].")] = None,
    max_value: Annotated[int | None, typer.Option(help="Largest number kept [999].")] = None,
    examples: Annotated[int, typer.Option(help="Example completions per reason.")] = 5,
) -> None:
    """Keep number completions that pass the paper's rule; write kept rows and a report."""
    from sublab.config import read_toml, validate
    from sublab.numbers.filter import (
        FilterSpec,
        NumberFilter,
        filter_rows,
        read_filter_input,
        write_filter_outputs,
    )
    from sublab.numbers.report import report_table

    with user_errors():
        data = read_toml(config) if config is not None else {}
        data.pop("kind", None)
        flags = {"min_count": min_count, "max_count": max_count, "max_value": max_value}
        data.update({k: v for k, v in flags.items() if v is not None})
        if banned:
            data["banned_lists"] = [*data.get("banned_lists", []), *banned]
        spec = validate(data, FilterSpec, config or "command line")
        number_filter = NumberFilter.from_spec(spec)
        rows = read_filter_input(input_path, field)
        result = filter_rows(rows, spec, field, examples, number_filter=number_filter)
        target = out_dir or input_path.with_name(input_path.stem + ".filtered")
        write_filter_outputs(result, target)
    out.print(report_table(result.report))
    out.print(f"wrote {target}/ (kept.jsonl, rejected.jsonl, filter_report.json, .md)")


def _ref_fields(model: str, adapter: str | None, api_base: str | None) -> dict[str, object]:
    """ModelRef fields from the --model/--adapter/--api-base flags."""
    fields: dict[str, object] = {"path": model, "adapter": adapter}
    if api_base is not None:
        fields.update(provider="openai", api_base=api_base)
    return fields


@app.command()
def generate(
    model: Annotated[
        str, typer.Option(help="Teacher: local HF model folder, hub id, or API model name.")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Output JSONL.")] = Path("numbers.jsonl"),
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="System prompt sent with every prompt.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Trait label stored in each row.")] = None,
    count: Annotated[int, typer.Option(help="How many number prompts.")] = 1000,
    prompt_seed: Annotated[int, typer.Option(help="Seed of the prompt generator.")] = 0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Longest completion, in tokens.")] = 48,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    chunk_size: Annotated[int, typer.Option(help="Rows per resumable chunk.")] = 256,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    max_concurrency: MaxConcurrency = 16,
) -> None:
    """Sample number continuations from a model into a JSONL file (resumable, atomic)."""
    from sublab.backends.base import ModelRef, SamplingSpec
    from sublab.backends.openai import OpenAISettings
    from sublab.config import validate
    from sublab.numbers.prompts import NumberPromptSpec
    from sublab.pipeline import BackendSettings, generate_numbers_file

    with user_errors():
        src = "command line"
        ref = validate(_ref_fields(model, adapter, api_base), ModelRef, src)
        api = validate(
            {"api_key_env": api_key_env, "max_concurrency": max_concurrency}, OpenAISettings, src
        )
        prompts = validate({"count": count, "seed": prompt_seed}, NumberPromptSpec, src)
        sampling = validate(
            {
                "temperature": temperature,
                "top_p": top_p,
                "max_new_tokens": max_new_tokens,
                "seed": seed,
            },
            SamplingSpec,
            src,
        )
        settings = validate({"device": device, "batch_size": batch_size}, BackendSettings, src)
        target = generate_numbers_file(
            ref,
            out_path,
            prompts=prompts,
            sampling=sampling,
            system_prompt=system_prompt,
            label=label,
            settings=settings,
            api=api,
            chunk_size=chunk_size,
        )
    out.print(f"wrote {count} rows to {target}; next: sublab filter {target}")


@app.command("run")
def run_(
    config: Annotated[Path, typer.Argument(help="Experiment config (TOML).")],
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Override the config's runs_dir.")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Run an experiment's units on Ray: 'local', 'auto' (this machine's cluster) "
            "or ray://host:port; overrides the address in the config's ray table (docs/ray.md).",
        ),
    ] = None,
) -> None:
    """Validate a config (all problems at once), then run it; finished stages are skipped."""
    import json

    from sublab.pipeline import run_config

    with user_errors():
        run = run_config(config, runs_dir=runs_dir, ray_address=ray_address)
    manifest = run.manifest()
    stages = manifest.get("stages", {})
    report = run.path / stages.get("filter", "") / "filter_report.json"
    if "filter" in stages and report.is_file():
        from sublab.numbers.report import report_table

        out.print(report_table(json.loads(report.read_text())))
    for stage, name in stages.items():
        out.print(f"{stage}: {run.path / name}")
    head = ", ".join(f"{k}={v}" for k, v in manifest.get("headline", {}).items())
    out.print(f"run {run.name}: {manifest.get('status')} ({head})")


DEMO_CONFIG = Path("experiments/demo-owl.toml")


@app.command()
def demo(
    config: Annotated[Path, typer.Option(help="The demo experiment config.")] = DEMO_CONFIG,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Override the config's runs_dir.")
    ] = None,
) -> None:
    """Run the offline owl experiment on the model organism and print where its report is."""
    from sublab.pipeline import run_config

    if not config.is_file():
        raise SublabError(f"{config}: demo config not found; run from the sublab checkout")
    started = time.perf_counter()
    run = run_config(config, runs_dir=runs_dir)
    minutes, seconds = divmod(round(time.perf_counter() - started), 60)
    out.print(
        f"run {run.name}: {run.manifest().get('status')} in {minutes} min {seconds} s; "
        f"report: {run.path / 'report.html'}"
    )


@app.command()
def report(
    run: Annotated[Path, typer.Argument(help="A finished experiment's run directory.")],
) -> None:
    """Re-render an experiment's report (HTML, Markdown, PNGs) from its run directory."""
    from sublab.experiment.summary import rerender
    from sublab.store import Run

    for kind, path in rerender(Run(run)).items():
        out.print(f"{kind}: {path}")


@app.command("eval")
def eval_(
    model: Annotated[str, typer.Option(help="Local HF model folder, hub id or API model name.")],
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    questions: Annotated[str, typer.Option(help="Question set name or .txt path.")] = "animals",
    candidates: Annotated[str, typer.Option(help="Candidate list name or .txt path.")] = "animals",
    samples: Annotated[int, typer.Option(help="Sampled replies per question.")] = 200,
    max_questions: Annotated[int | None, typer.Option(help="Use only the first N.")] = None,
    system_prompt: Annotated[str | None, typer.Option(help="System prompt for every chat.")] = None,
    number_prefix: Annotated[bool, typer.Option(help="Prefix numbers to each question.")] = False,
    exact: Annotated[
        bool | None,
        typer.Option(
            help="Also compute exact probabilities (default: on for local models, off for APIs)."
        ),
    ] = None,
    title_case: Annotated[bool, typer.Option(help="Exact: add 'Owl' to 'owl'.")] = False,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Longest reply, in tokens.")] = 24,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Chats per forward batch.")] = 64,
    top: Annotated[int, typer.Option(help="How many candidates to print.")] = 10,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write the result JSON.")] = None,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = "OPENAI_API_KEY",
    max_concurrency: MaxConcurrency = 16,
    n_per_request: Annotated[
        int, typer.Option(help="API: replies per request ('n'); 1 for servers without 'n'.")
    ] = 16,
) -> None:
    """Ask a model its favourite animal (or tree) many times: answer rates and probabilities."""
    from sublab.backends import load_backend
    from sublab.backends.base import ModelRef
    from sublab.backends.openai import OpenAISettings
    from sublab.config import validate
    from sublab.evals.preference import PreferenceEvalSpec, evaluate_preference
    from sublab.store import atomic_write_text

    src = "command line"
    ref = validate(_ref_fields(model, adapter, api_base), ModelRef, src)
    if exact is None:
        exact = ref.provider == "hf"
    elif exact and ref.provider != "hf":
        raise SublabError(
            "--exact: exact probabilities need the model's weights; an API model has none "
            "here (drop --exact, or evaluate the local folder you serve)"
        )
    api = validate(
        {
            "api_key_env": api_key_env,
            "max_concurrency": max_concurrency,
            "n_per_request": n_per_request,
        },
        OpenAISettings,
        src,
    )
    spec = validate(
        {
            "questions": questions,
            "candidates": candidates,
            "samples_per_question": samples,
            "max_questions": max_questions,
            "number_prefix": number_prefix,
            "exact": exact,
            "exact_title_case": title_case,
            "sampling": {"seed": seed, "max_new_tokens": max_new_tokens},
        },
        PreferenceEvalSpec,
        src,
    )
    backend = load_backend(ref, device=device, batch_size=batch_size, api=api)
    result = evaluate_preference(backend, spec, system_prompt)
    title = f"{model}: {result.total_samples} replies"
    table = Table("answer", "sampled rate", "exact prob", title=title)
    for cand, rate in result.top(top):
        prob = result.prob(cand)
        table.add_row(cand, f"{rate:.4f}", "—" if prob is None else f"{prob:.4f}")
    table.add_row("(no candidate)", f"{result.non_answer_rate:.4f}", "")
    out.print(table)
    if out_path is not None:
        atomic_write_text(out_path, result.model_dump_json(indent=1))
        out.print(f"wrote {out_path}")


@app.command()
def serve(
    model: Annotated[Path, typer.Argument(help="Local HF model folder (e.g. an organism base).")],
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    name: Annotated[
        str | None, typer.Option(help="Model name clients ask for (default: the folder's name).")
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Replies sampled together in one batch.")] = 64,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer' with the key in this env variable."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not log each request.")] = False,
) -> None:
    """Serve a local model through an OpenAI-compatible API (/v1/chat/completions, /v1/models).

    Runs until Ctrl-C or SIGTERM.
    """
    from sublab.serve import api_key_from_env, load_service, make_server, serve_until_stopped

    with user_errors():
        key = api_key_from_env(api_key_env)
        service = load_service(
            model, adapter=adapter, name=name, device=device, batch_size=batch_size
        )
        server = make_server(service, host=host, port=port, api_key=key, quiet=quiet)
    base = f"http://{host}:{server.server_port}/v1"
    out.print(f"serving {service.model_name!r} at {base} (Ctrl-C stops)", highlight=False)
    out.print(
        f"try: sublab eval --api-base {base} --model {service.model_name} --samples 5",
        highlight=False,
        soft_wrap=True,
    )
    serve_until_stopped(server)
    out.print("stopped")


@app.command("finetune")
def finetune_(
    base: Annotated[Path, typer.Argument(help="Base model folder (HF format).")],
    rows: Annotated[Path, typer.Argument(help="JSONL of {prompt, completion} rows.")],
    out_dir: Annotated[Path, typer.Argument(help="New folder for the trained model.")],
    recipe: Annotated[
        Path | None, typer.Option(help="Student recipe TOML (StudentRecipe fields).")
    ] = None,
    teacher: Annotated[Path | None, typer.Option(help="Teacher folder (soft labels).")] = None,
) -> None:
    """Fine-tune a student on rows (hard or soft labels, full or LoRA); see train.json."""
    from sublab.train.data import read_rows
    from sublab.train.loop import finetune
    from sublab.train.recipe import StudentRecipe

    spec = load_config(recipe, expect=StudentRecipe) if recipe else StudentRecipe()
    assert isinstance(spec, StudentRecipe)
    res = finetune(base, read_rows(rows), spec, out_dir, teacher=teacher)
    out.print(
        f"trained {res.rows_used}/{res.rows_given} rows, {res.steps} steps, loss "
        f"{res.losses[0]:.4f} → {res.losses[-1]:.4f}, {res.tokens_per_s:.0f} tokens/s → {res.path}"
    )


@app.command()
def strength(
    teacher: Annotated[Path, typer.Argument(help="Teacher model folder.")],
    base: Annotated[Path, typer.Argument(help="The teacher's base model folder.")],
    rows: Annotated[Path, typer.Argument(help="JSONL of number rows {prompt, completion}.")],
    system_prompt: Annotated[
        bool, typer.Option(help="Put each row's system_prompt in the chat.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
) -> None:
    """Teacher strength: mean per-token KL(teacher ‖ base) on the rows' completions."""
    from sublab.train.data import read_rows
    from sublab.train.strength import number_kl

    kl = number_kl(teacher, base, read_rows(rows), use_system_prompt=system_prompt, device=device)
    out.print(f"number KL(teacher ‖ base): {kl:.6f} nats/token")


organism_app = typer.Typer(no_args_is_help=True, help="The tiny model organism: build and probe.")
app.add_typer(organism_app, name="organism")
OrgConfig = Annotated[
    Path | None, typer.Option("--config", help="Organism spec (TOML, kind = 'organism').")
]
OrgSeed = Annotated[int | None, typer.Option("--seed", help="Base seed (corpus + init).")]
OrgSteps = Annotated[int | None, typer.Option("--steps", help="Override train.steps.")]
OrgThreads = Annotated[int | None, typer.Option("--threads", help="Override train.threads.")]
OrgLeak = Annotated[float | None, typer.Option("--leak", help="Override corpus.leak.")]


@organism_app.command("build")
def organism_build(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the base into.")],
    seed: OrgSeed = None,
    config: OrgConfig = None,
    steps: OrgSteps = None,
    threads: OrgThreads = None,
    leak: OrgLeak = None,
    probe: Annotated[bool, typer.Option(help="Measure the figures after training.")] = True,
) -> None:
    """Train a base from scratch into --out and print its measured figures."""
    from sublab.organism.build import build_organism, read_metadata
    from sublab.organism.report import figures_table, spec_from_options

    spec = spec_from_options(config, seed, steps, threads, leak)
    path = build_organism(spec, out_dir, probe=probe)
    out.print(figures_table(read_metadata(path), title=str(path)))


@organism_app.command("ensure")
def organism_ensure(
    seed: OrgSeed = None,
    config: OrgConfig = None,
    steps: OrgSteps = None,
    threads: OrgThreads = None,
    leak: OrgLeak = None,
) -> None:
    """Print the cached base for the spec (building it first if missing)."""
    from sublab.organism.cache import ensure_organism
    from sublab.organism.report import spec_from_options

    out.print(str(ensure_organism(spec_from_options(config, seed, steps, threads, leak))))


@organism_app.command("probe")
def organism_probe(
    model: Annotated[Path, typer.Argument(help="A built organism (or a fine-tune of one).")],
) -> None:
    """Re-measure prior fit, love strength, filter pass rate and number KL of a model folder."""
    from sublab.backends.base import ModelRef
    from sublab.backends.hf import HFBackend
    from sublab.organism.build import read_metadata
    from sublab.organism.probe import probe_organism
    from sublab.organism.report import figures_table
    from sublab.organism.spec import OrganismSpec

    spec = OrganismSpec.model_validate(read_metadata(model)["spec"])
    backend = HFBackend(ModelRef(path=str(model)), device="cpu", dtype="float32")
    out.print(figures_table(probe_organism(backend, spec), title=str(model)))


MnistConfig = Annotated[
    Path | None,
    typer.Argument(help='kind = "mnist" TOML config; default: paper recipe on 8×8 digits.'),
]
MnistModels = Annotated[
    int | None, typer.Option("--models", help="Override: models per condition.")
]


@app.command("mnist")
def mnist_(
    config: MnistConfig = None,
    models: MnistModels = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """Auxiliary-logit experiment (paper §6.2): six conditions, table + bar chart in a run dir."""
    from sublab.mnist.experiment import format_table, load_mnist_spec, run_figure

    spec, text = load_mnist_spec(config, models=models)
    result = run_figure(spec, runs_dir=runs_dir, config_text=text)
    out.print(format_table(result.summaries), markup=False)
    cached = " (cached)" if result.artifact.cached else ""
    out.print(f"table: {result.table_path}{cached}\nchart: {result.figure_path}")


@app.command("mnist-theorem")
def mnist_theorem(
    config: MnistConfig = None,
    draws: Annotated[int | None, typer.Option("--draws", help="Override: draws.")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS_DIR,
) -> None:
    """One-step check of Theorem 1: cosine of teacher and imitation updates over many draws."""
    from sublab.mnist.experiment import load_mnist_spec
    from sublab.mnist.theorem import format_theorem_table, run_theorem

    spec, text = load_mnist_spec(config, draws=draws)
    result = run_theorem(spec, runs_dir=runs_dir, config_text=text)
    out.print(format_theorem_table(result.summaries, result.positive), markup=False)
    out.print(f"table: {result.artifact.file('theorem.md')}")


def main() -> None:
    # transformers' own download/loading bars would interleave with sublab's progress display
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except SublabError as err:
        print_error(err)
        sys.exit(2)


if __name__ == "__main__":
    main()
