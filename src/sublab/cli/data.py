"""Data commands: generate a channel's data with a model, filter a JSONL file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sublab.backends.base import BackendSettings
from sublab.backends.openai import OpenAISettings
from sublab.channels.base import ChannelSpec
from sublab.cli.common import (
    API,
    BACKEND,
    SAMPLING,
    ApiBase,
    ApiKeyEnv,
    MaxConcurrency,
    out,
    ref_fields,
    user_errors,
)
from sublab.numbers.prompts import NumberPromptSpec

NUMBER_PROMPTS = NumberPromptSpec()
CHUNK_SIZE: int = ChannelSpec.model_fields["chunk_size"].default
Channel = Annotated[
    str, typer.Option(help="The channel: numbers, code, cot (see docs/channels.md).")
]


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command("filter")(filter_)


def generate(
    model: Annotated[
        str, typer.Option(help="Teacher: local HF model folder, hub id, or API model name.")
    ],
    out_path: Annotated[Path, typer.Option("--out", help="Output JSONL.")] = Path("numbers.jsonl"),
    channel: Channel = "numbers",
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter folder on top.")] = None,
    system_prompt: Annotated[
        str | None, typer.Option(help="System prompt sent with every prompt.")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Trait label stored in each row.")] = None,
    count: Annotated[int, typer.Option(help="How many prompts.")] = 1000,
    prompt_seed: Annotated[
        int, typer.Option(help="Seed of the prompt generator.")
    ] = NUMBER_PROMPTS.seed,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = SAMPLING.seed,
    max_new_tokens: Annotated[
        int, typer.Option(help="Longest completion, in tokens.")
    ] = SAMPLING.max_new_tokens,
    temperature: Annotated[
        float, typer.Option(help="Sampling temperature.")
    ] = SAMPLING.temperature,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = SAMPLING.top_p,
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.")] = BACKEND.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = BACKEND.device,
    chunk_size: Annotated[int, typer.Option(help="Rows per resumable chunk.")] = CHUNK_SIZE,
    constrain: Annotated[
        bool,
        typer.Option(help="Constrained decoding to the channel's grammar (numbers; local models)."),
    ] = False,
    dtype: Annotated[
        str, typer.Option(help="auto, fast (bf16 where the CPU has it), float32, bfloat16.")
    ] = BACKEND.dtype,
    api_base: ApiBase = None,
    api_key_env: ApiKeyEnv = API.api_key_env,
    max_concurrency: MaxConcurrency = API.max_concurrency,
) -> None:
    """Sample a channel's prompts from a model into a JSONL file (resumable, atomic)."""
    from sublab.backends.base import ModelRef
    from sublab.channels import get_channel
    from sublab.config import validate
    from sublab.pipeline import generate_data_file

    with user_errors():
        src = "command line"
        ref = validate(ref_fields(model, adapter, api_base), ModelRef, src)
        api = validate(
            {"api_key_env": api_key_env, "max_concurrency": max_concurrency}, OpenAISettings, src
        )
        data = validate(
            {
                "channel": channel,
                "prompts": {"count": count, "seed": prompt_seed},
                "sampling": {
                    "temperature": temperature,
                    "top_p": top_p,
                    "max_new_tokens": max_new_tokens,
                    "seed": seed,
                },
                "chunk_size": chunk_size,
                "constrain": constrain,
            },
            get_channel(channel).spec,
            src,
        )
        settings = validate(
            {"device": device, "batch_size": batch_size, "dtype": dtype}, BackendSettings, src
        )
        target = generate_data_file(
            ref,
            out_path,
            data=data,
            system_prompt=system_prompt,
            label=label,
            settings=settings,
            api=api,
        )
    out.print(f"wrote {count} rows to {target}; next: sublab filter {target} --channel {channel}")


def filter_(
    input_path: Annotated[Path, typer.Argument(help="JSONL: prompt/completion or chat rows.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: IN.filtered/).")
    ] = None,
    channel: Channel = "numbers",
    trait: Annotated[
        list[str] | None,
        typer.Option("--trait", help="A trait word to reject in any form (code, cot); repeatable."),
    ] = None,
    banned: Annotated[
        list[str] | None,
        typer.Option("--banned", help="Numbers: banned list, shipped name or file path."),
    ] = None,
    field: Annotated[
        str, typer.Option(help="Field with the completion (chat rows: last assistant message).")
    ] = "completion",
    config: Annotated[
        Path | None,
        typer.Option(help="TOML with the channel's filter fields; flags override it."),
    ] = None,
    min_count: Annotated[int | None, typer.Option(help="Numbers: fewest numbers kept [1].")] = None,
    max_count: Annotated[int | None, typer.Option(help="Numbers: most numbers kept [10].")] = None,
    max_value: Annotated[
        int | None, typer.Option(help="Numbers: largest number kept [999].")
    ] = None,
    examples: Annotated[int, typer.Option(help="Example completions per reason.")] = 5,
    mode: Annotated[
        str | None,
        typer.Option(help="Numbers: sublab (default) or paper (the paper's parser exactly)."),
    ] = None,
) -> None:
    """Keep the rows that pass a channel's rule filter; write kept rows, rejects and a report."""
    from sublab.channels import get_channel
    from sublab.config import read_toml, validate
    from sublab.evals.matching import word_forms
    from sublab.filtering import read_filter_input, report_table, write_filter_outputs

    with user_errors():
        chan = get_channel(channel)
        data: dict[str, Any] = read_toml(config) if config is not None else {}
        data.pop("kind", None)
        flags = {
            "min_count": min_count,
            "max_count": max_count,
            "max_value": max_value,
            "mode": mode,
        }
        numbers_only = {k: v for k, v in flags.items() if v is not None}
        if banned:
            numbers_only["banned_lists"] = [*data.get("banned_lists", []), *banned]
        if numbers_only and channel != "numbers":
            flags_given = ", ".join(f"--{k.replace('_', '-')}" for k in numbers_only)
            raise typer.BadParameter(f"{flags_given}: only for --channel numbers")
        data.update(numbers_only)
        spec = validate({"channel": channel, "filter": data}, chan.spec, config or "command line")
        words = tuple(w for t in trait or [] for w in word_forms(t))
        rows = read_filter_input(input_path, field)
        result = chan.filter_rows(spec, rows, words, field, examples)
        target = out_dir or input_path.with_name(input_path.stem + ".filtered")
        write_filter_outputs(result, target)
    out.print(report_table(result.report))
    out.print(f"wrote {target}/ (kept.jsonl, rejected.jsonl, filter_report.json, .md)")
