"""The generation stage: chunked, atomic, resumable, byte-identical after a kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from sublab.backends.base import ModelRef, SamplingSpec
from sublab.backends.hf import HFBackend
from sublab.errors import SublabError
from sublab.generate import ROWS, chunk_name, chunk_seed, generate_rows
from sublab.jsonl import read_jsonl

PROMPTS = [
    f"here are some numbers {i}, {i + 7}, {2 * i + 1}. continue the sequence" for i in range(60)
]
SAMPLING = SamplingSpec(max_new_tokens=12, seed=7)
CHUNK = 8

# Runs generate_rows in a child process; after the first chunk each call sleeps, so the parent
# has time to kill it mid-run. The sleep is outside the library: what runs is the real backend.
CHILD = """
import sys, time
import torch
torch.set_num_threads(1)
from pathlib import Path
from sublab.backends.base import ModelRef, SamplingSpec
from sublab.backends.hf import HFBackend
from sublab.generate import generate_rows

class Slow(HFBackend):
    def generate(self, chats, sampling):
        out = super().generate(chats, sampling)
        time.sleep(0.4)
        return out

model, work, prompts_file = sys.argv[1:4]
prompts = Path(prompts_file).read_text().splitlines()
backend = Slow(ModelRef(path=model), batch_size=4)
generate_rows(backend, prompts, system_prompt="you love owls",
              sampling=SamplingSpec(max_new_tokens=12, seed=7), work_dir=Path(work),
              chunk_size=8, provenance={"teacher": "tiny", "label": "owl"})
"""


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(ModelRef(path=str(tiny_model)), batch_size=4)


def _gen(backend, work, prompts=PROMPTS, **kw):
    args = {
        "system_prompt": "you love owls",
        "sampling": SAMPLING,
        "chunk_size": CHUNK,
        "provenance": {"teacher": "tiny", "label": "owl"},
    }
    args.update(kw)
    return generate_rows(backend, prompts, work_dir=work, **args)


@pytest.fixture(scope="module")
def reference(backend, tmp_path_factory):
    return _gen(backend, tmp_path_factory.mktemp("ref"))


def test_rows_have_every_id_and_provenance(reference):
    rows = [r for _, r in read_jsonl(reference)]
    assert [r["id"] for r in rows] == list(range(len(PROMPTS)))
    assert [r["prompt"] for r in rows] == PROMPTS
    r = rows[0]
    assert r["system_prompt"] == "you love owls"
    assert r["teacher"] == "tiny" and r["label"] == "owl"
    assert r["sampling"] == SAMPLING.model_dump(mode="json")
    assert r["seed"] == 7
    assert r["chunk_seed"] == chunk_seed(7, 0)
    assert rows[CHUNK]["chunk_seed"] == chunk_seed(7, 1)
    assert all(isinstance(r["completion"], str) for r in rows)
    # chunks are merged and removed
    assert not list(reference.parent.glob("chunk-*"))


def test_same_call_same_bytes_and_seed_matters(backend, reference, tmp_path):
    again = _gen(backend, tmp_path / "a")
    assert again.read_bytes() == reference.read_bytes()
    other = _gen(backend, tmp_path / "b", sampling=SAMPLING.model_copy(update={"seed": 8}))
    a = [r["completion"] for _, r in read_jsonl(reference)]
    b = [r["completion"] for _, r in read_jsonl(other)]
    assert a != b


def test_chunk_randomness_depends_only_on_seed_and_index(backend, reference, tmp_path):
    """Generating only the first 16 prompts reproduces the first two chunks exactly."""
    short = _gen(backend, tmp_path / "short", prompts=PROMPTS[:16])
    ref_lines = reference.read_text().splitlines()[:16]
    short_rows = [json.loads(x) for x in short.read_text().splitlines()]
    assert [r["completion"] for r in short_rows] == [json.loads(x)["completion"] for x in ref_lines]


def test_resume_skips_existing_chunks(backend, reference, tmp_path):
    work = tmp_path / "w"
    _gen(backend, work, prompts=PROMPTS[:16])  # writes a plan for 16 prompts...
    with pytest.raises(SublabError, match="different generation"):
        _gen(backend, work)  # ...so the 60-prompt plan is refused, not mixed in
    # a chunk already on disk is reused as is (marked here so we can see it was not redone)
    work2 = tmp_path / "w2"
    lines = reference.read_text().splitlines(keepends=True)
    work2.mkdir()
    (work2 / chunk_name(1)).write_text("".join(lines[CHUNK : 2 * CHUNK]).replace("tiny", "TINY"))
    (work2 / ".chunk-00002.jsonl.abc.tmp").write_text("half a line")
    out = _gen(backend, work2)
    rows = [r for _, r in read_jsonl(out)]
    assert [r["teacher"] for r in rows[CHUNK : 2 * CHUNK]] == ["TINY"] * CHUNK
    assert [r["teacher"] for r in rows[2 * CHUNK :]] == ["tiny"] * (len(PROMPTS) - 2 * CHUNK)
    assert not list(work2.glob(".chunk-*"))
    assert [r["id"] for r in rows] == list(range(len(PROMPTS)))


def test_finished_folder_returns_at_once(backend, reference):
    before = reference.stat().st_mtime_ns
    assert _gen(backend, reference.parent) == reference
    assert reference.stat().st_mtime_ns == before


def test_bad_chunk_size(backend, tmp_path):
    with pytest.raises(SublabError, match="chunk_size must be >= 1"):
        _gen(backend, tmp_path, chunk_size=0)


def test_kill_minus_nine_then_resume_is_byte_identical(tiny_model, backend, reference, tmp_path):
    work = tmp_path / "killed"
    prompts_file = tmp_path / "prompts.txt"
    prompts_file.write_text("\n".join(PROMPTS))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tiny_model), str(work), str(prompts_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while not (work / chunk_name(0)).exists():
            if child.poll() is not None:
                pytest.fail(f"child exited early: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no chunk written within 120 s")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    written = sorted(p.name for p in work.glob("chunk-*.jsonl"))
    assert 1 <= len(written) < len(PROMPTS) // CHUNK  # really stopped mid-run
    assert not (work / ROWS).exists()

    out = _gen(backend, work)  # resume in this process with the plain backend
    rows = [r for _, r in read_jsonl(out)]
    ids = [r["id"] for r in rows]
    assert ids == list(range(len(PROMPTS)))
    assert len(set(ids)) == len(ids)
    assert out.read_bytes() == reference.read_bytes()
