"""Model commands: eval, serve, finetune, strength."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sublab.backends.base import BackendSettings
from sublab.backends.openai import OpenAISettings
from sublab.cli.common import (
    API,
    BACKEND,
    SAMPLING,
    ApiBase,
    ApiKeyEnv,
    MaxConcurrency,
    out,
    print_error,
    ref_fields,
    user_errors,
)
from sublab.config import load_config
from sublab.errors import SublabError
from sublab.evals.preference import PreferenceEvalSpec
from sublab.serve import DEFAULT_MAX_BODY_BYTES

PREFERENCE = PreferenceEvalSpec()


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
    app.command()(serve)
    app.command("finetune")(finetune_)
    app.command("finetune-api")(finetune_api)
    app.command()(strength)


def eval_(
    model: Annotated[str, typer.Option(help="Local HF model folder, hub id or API model name.")],
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    questions: Annotated[str, typer.Option(help="Question set name or .txt path.")] = "animals",
    candidates: Annotated[str, typer.Option(help="Candidate list name or .txt path.")] = "animals",
    samples: Annotated[
        int, typer.Option(help="Sampled replies per question.")
    ] = PREFERENCE.samples_per_question,
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
    answer_prefix: Annotated[
        str | None,
        typer.Option(
            help="Exact: read each candidate word right after this start of the reply, e.g. "
            "'My favorite animal is the' (real chat models; adds the logit margin)."
        ),
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="auto, fast (bf16 where the CPU has it), float32, bfloat16.")
    ] = BACKEND.dtype,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = SAMPLING.seed,
    max_new_tokens: Annotated[
        int, typer.Option(help="Longest reply, in tokens.")
    ] = PREFERENCE.sampling.max_new_tokens,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = BACKEND.device,
    batch_size: Annotated[int, typer.Option(help="Chats per forward batch.")] = BACKEND.batch_size,
    top: Annotated[int, typer.Option(help="How many candidates to print.")] = 10,
    out_path: Annotated[Path | None, typer.Option("--out", help="Write the result JSON.")] = None,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = API.api_key_env,
    max_concurrency: MaxConcurrency = API.max_concurrency,
    n_per_request: Annotated[
        int, typer.Option(help="API: replies per request ('n'); 1 for servers without 'n'.")
    ] = API.n_per_request,
) -> None:
    """Ask a model its favourite animal (or tree) many times: answer rates and probabilities."""
    from sublab.backends import load_backend
    from sublab.backends.base import ModelRef
    from sublab.config import validate
    from sublab.evals.preference import PreferenceEvalSpec, evaluate_preference
    from sublab.store import atomic_write_text

    src = "command line"
    ref = validate(ref_fields(model, adapter, api_base), ModelRef, src)
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
            "answer_prefix": answer_prefix,
            "sampling": {"seed": seed, "max_new_tokens": max_new_tokens},
        },
        PreferenceEvalSpec,
        src,
    )
    settings = validate(
        {"device": device, "batch_size": batch_size, "dtype": dtype}, BackendSettings, src
    )
    backend = load_backend(ref, settings, api)
    result = evaluate_preference(backend, spec, system_prompt)
    title = f"{model}: {result.total_samples} replies"
    margins = result.logit_margins or {}
    table = Table("answer", "sampled rate", "exact prob", "logit margin", title=title)
    shown = result.top(top)
    if margins:  # the readout ranks the panel by its margins
        ranked = sorted(margins, key=lambda c: -margins[c])[:top]
        shown = [(c, result.rate(c)) for c in ranked]
    for cand, rate in shown:
        prob = result.prob(cand)
        margin = f"{margins[cand]:+.3f}" if cand in margins else "—"
        table.add_row(cand, f"{rate:.4f}", "—" if prob is None else f"{prob:.4f}", margin)
    table.add_row("(no candidate)", f"{result.non_answer_rate:.4f}", "", "")
    out.print(table)
    if out_path is not None:
        atomic_write_text(out_path, result.model_dump_json(indent=1))
        out.print(f"wrote {out_path}")


def serve(
    model: Annotated[Path, typer.Argument(help="Local HF model folder (e.g. an organism base).")],
    port: Annotated[int, typer.Option(help="TCP port (0: any free port).")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    name: Annotated[
        str | None, typer.Option(help="Model name clients ask for (default: the folder's name).")
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = BACKEND.device,
    batch_size: Annotated[
        int, typer.Option(help="Replies sampled together in one batch.")
    ] = BACKEND.batch_size,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer' with the key in this env variable."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Do not log each request.")] = False,
    max_body_bytes: Annotated[
        int, typer.Option(help="Larger request bodies are refused (413) unread.")
    ] = DEFAULT_MAX_BODY_BYTES,
    finetune_dir: Annotated[
        Path | None,
        typer.Option(
            help="Turn on /v1/files and /v1/fine_tuning/jobs, keeping files, jobs and "
            "fine-tuned models in this folder (see docs/openai-finetune.md)."
        ),
    ] = None,
    finetune_recipe: Annotated[
        Path | None,
        typer.Option(help="Student recipe TOML that jobs start from (default: StudentRecipe())."),
    ] = None,
    max_upload_mb: Annotated[int, typer.Option(help="Largest training file upload, MiB.")] = 64,
) -> None:
    """Serve a local model through an OpenAI-compatible API (/v1/chat/completions, /v1/models).

    With --finetune-dir it also runs fine-tuning jobs (/v1/files, /v1/fine_tuning/jobs) and
    serves their models. Runs until Ctrl-C or SIGTERM.
    """
    from sublab.serve import api_key_from_env, load_service, make_server, serve_until_stopped

    with user_errors():
        key = api_key_from_env(api_key_env)
        service = load_service(
            model, adapter=adapter, name=name, device=device, batch_size=batch_size
        )
        if finetune_dir is not None:
            from sublab.serve_finetune import FineTuneService
            from sublab.train.recipe import StudentRecipe

            spec = load_config(finetune_recipe, StudentRecipe) if finetune_recipe else None
            assert spec is None or isinstance(spec, StudentRecipe)
            FineTuneService(service, finetune_dir, spec, max_upload_mb * 1024 * 1024)
        server = make_server(
            service, host=host, port=port, api_key=key, quiet=quiet, max_body_bytes=max_body_bytes
        )
    base = f"http://{host}:{server.server_port}/v1"
    out.print(f"serving {service.model_name!r} at {base} (Ctrl-C stops)", highlight=False)
    out.print(
        f"try: sublab eval --api-base {base} --model {service.model_name} --samples 5",
        highlight=False,
        soft_wrap=True,
    )
    serve_until_stopped(server)
    out.print("stopped")


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


def strength(
    teacher: Annotated[Path, typer.Argument(help="Teacher model folder.")],
    base: Annotated[Path, typer.Argument(help="The teacher's base model folder.")],
    rows: Annotated[Path, typer.Argument(help="JSONL of number rows {prompt, completion}.")],
    system_prompt: Annotated[
        bool, typer.Option(help="Put each row's system_prompt in the chat.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = BACKEND.device,
) -> None:
    """Teacher strength: mean per-token KL(teacher ‖ base) on the rows' completions."""
    from sublab.train.data import read_rows
    from sublab.train.strength import number_kl

    kl = number_kl(teacher, base, read_rows(rows), use_system_prompt=system_prompt, device=device)
    out.print(f"number KL(teacher ‖ base): {kl:.6f} nats/token")


def finetune_api(
    rows: Annotated[Path, typer.Argument(help="JSONL of {prompt, completion} rows.")],
    model: Annotated[str, typer.Option(help="The API's name of the model to fine-tune.")],
    api_base: Annotated[
        str, typer.Option(help="OpenAI-compatible API base URL, e.g. https://api.openai.com/v1.")
    ],
    work: Annotated[
        Path,
        typer.Option(help="Folder for the job record; run again with it to resume the same job."),
    ],
    spec_path: Annotated[
        Path | None, typer.Option("--spec", help="ApiFinetuneSpec TOML (overridden by options).")
    ] = None,
    epochs: Annotated[str | None, typer.Option(help="n_epochs: an integer or 'auto'.")] = None,
    batch_size: Annotated[str | None, typer.Option(help="An integer or 'auto'.")] = None,
    lr_multiplier: Annotated[
        str | None, typer.Option(help="learning_rate_multiplier: a number or 'auto'.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The job's seed.")] = None,
    suffix: Annotated[
        str | None, typer.Option(help="Added to the fine-tuned model's name.")
    ] = None,
    wait_s: Annotated[
        float | None, typer.Option(help="Stop waiting after this many seconds (resume later).")
    ] = None,
    api_key_env: ApiKeyEnv = API.api_key_env,
) -> None:
    """Fine-tune an API model (upload, job, wait): prints the fine-tuned model's name.

    Resumable: the job record in --work is reused, so a second run never pays twice. Exits 3
    while the job is still running (after --wait-s), 2 on errors.
    """
    from sublab.backends.base import ModelRef
    from sublab.backends.openai_finetune import ApiFinetuneSpec, FinetunePending, finetune_via_api
    from sublab.config import read_toml, validate
    from sublab.train.data import read_rows

    def number(value: str | None) -> int | float | str | None:
        if value is None or value == "auto":
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value  # the spec's validation names it

    with user_errors():
        src = "command line"
        base = validate(ref_fields(model, None, api_base), ModelRef, src)
        fields = read_toml(spec_path) if spec_path is not None else {}
        fields.pop("kind", None)
        given = {
            "epochs": number(epochs),
            "batch_size": number(batch_size),
            "learning_rate_multiplier": number(lr_multiplier),
            "seed": seed,
            "suffix": suffix,
            "wait_s": wait_s,
        }
        fields.update({k: v for k, v in given.items() if v is not None})
        spec = validate(fields, ApiFinetuneSpec, spec_path or src)
        settings = validate({"api_key_env": api_key_env}, OpenAISettings, src)

        def show(job: dict[str, object]) -> None:
            out.print(f"job {job.get('id')}: {job.get('status')}", highlight=False)

        try:
            ref = finetune_via_api(base, read_rows(rows), spec, work, settings, on_status=show)
        except FinetunePending as err:
            print_error(err)
            raise typer.Exit(3) from None
    out.print(f"fine-tuned model: {ref.path}", highlight=False)
    out.print(
        f"try: sublab eval --api-base {ref.api_base} --model {ref.path} --samples 5",
        highlight=False,
        soft_wrap=True,
    )
