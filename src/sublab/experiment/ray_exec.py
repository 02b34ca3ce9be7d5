"""Run a job graph (:mod:`sublab.experiment.schedule`) as Ray tasks, on one machine or a cluster.

Same contract as :func:`sublab.experiment.schedule.run_jobs`: a job is submitted once every job it
needs has finished, list order is the priority (ready jobs are submitted in list order), the first
job that raises cancels the rest and its error propagates, and ``{name: result}`` comes back to
this process. Each job asks Ray for its CPUs and GPUs (the job's own request, else the
settings'), and its torch uses as many threads as it was given CPUs.

Caching and resume are the run directory's: every stage writes a content-hashed artifact that is
renamed into place only when finished, so the run directory (and the organism cache,
``$SUBLAB_CACHE_DIR``) must be on a filesystem every node mounts at the same path; a rerun of a
killed cluster run finds what finished and redoes only the rest. ``ray`` is an optional extra
(``pip install 'sublab[ray]'``); nothing here imports it until a job graph runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from sublab.config import Spec
from sublab.errors import SublabError

if TYPE_CHECKING:
    from sublab.experiment.schedule import Job

_FORWARDED_ENV = ("SUBLAB_CACHE_DIR", "HF_HOME", "HF_HUB_OFFLINE")
"""Environment variables of this process that Ray workers get too (where the organism cache and
Hugging Face files live must be the same on every node)."""


class RaySettings(Spec):
    """Where and how an experiment's units run as Ray tasks (the ``[ray]`` table)."""

    address: str = Field(
        "local",
        description="'local': start a private Ray instance on this machine for the run and stop "
        "it after; 'auto': join the Ray cluster this machine is part of (started with "
        "'ray start'); 'ray://host:10001': a remote cluster through Ray Client.",
    )
    num_cpus: float = Field(
        1.0,
        gt=0,
        description="CPUs each unit asks for; its torch uses that many threads (at least 1).",
    )
    num_gpus: float = Field(
        0.0,
        ge=0,
        description="GPUs each unit asks for (fractions share a GPU); 0 runs units on CPUs.",
    )
    local_cpus: int | None = Field(
        None,
        ge=1,
        description="With address = 'local': CPUs the private instance offers (None: all).",
    )
    temp_dir: str | None = Field(
        None,
        description="With address = 'local': the private instance's session folder (keep the "
        "path short: Ray's sockets live there). None: a new folder under the system temp dir.",
    )
    working_dir: str | None = Field(
        None,
        description="A folder Ray uploads to every worker as its working directory (its "
        "runtime_env working_dir), for clusters whose nodes lack this sublab checkout. None: "
        "the nodes' installed sublab is used (it must be the same version: artifact keys "
        "include it).",
    )
    max_retries: int = Field(
        3,
        ge=0,
        description="Times a unit is restarted when its worker or node dies (not when it "
        "raises); a restarted unit resumes from its finished artifacts.",
    )

    @field_validator("address")
    @classmethod
    def _known_address(cls, v: str) -> str:
        if v in ("local", "auto") or re.match(r"^(ray://)?[\w.-]+:\d+$", v):
            return v
        raise ValueError("use 'local', 'auto', 'ray://host:port' or 'host:port'")


def import_ray() -> Any:
    """The ``ray`` module, or a SublabError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise SublabError(
            "running on Ray needs the 'ray' package: pip install 'sublab[ray]' "
            "(or drop --ray-address / the [ray] table to run on local processes)"
        ) from None
    return ray


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[Any]:
    """Connect to Ray as ``settings`` say and yield the module; disconnect after.

    When Ray is already initialised in this process (a notebook, a test fixture) that session is
    used and left running. A 'local' instance started here is stopped on exit (only it: other
    Ray instances on the machine are untouched); joining a cluster only disconnects from it."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    env = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    runtime_env: dict[str, Any] = {"env_vars": env} if env else {}
    if settings.working_dir is not None:
        runtime_env["working_dir"] = settings.working_dir
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": True,
        "runtime_env": runtime_env or None,
    }
    made = None
    if settings.address == "local":
        temp = settings.temp_dir or (made := tempfile.mkdtemp(prefix="sublab-ray-"))
        ray.init(address="local", num_cpus=settings.local_cpus, _temp_dir=temp, **kwargs)
    else:
        kwargs.pop("include_dashboard")
        ray.init(address=settings.address, **kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()
        if made is not None:  # the session folder made here (its logs) goes with the session
            shutil.rmtree(made, ignore_errors=True)


def _in_worker(cwd: str, threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """A job's body in a Ray worker: the driver's working directory when this node has it (so
    relative run paths resolve alike), ``threads`` torch threads, then ``fn(*args)``."""
    if Path(cwd).is_dir():
        os.chdir(cwd)
    import torch

    torch.set_num_threads(threads)
    return fn(*args)


def run_jobs_ray(
    jobs: list[Job],
    settings: RaySettings,
    on_done: Callable[[Job, Any], None] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` as Ray tasks and return ``{name: result}``; see the module docstring.

    A job that raises stops the run: its error propagates here (the original exception, with
    Ray's remote traceback chained), jobs not yet submitted are dropped and running ones are
    cancelled. ``on_done`` is called in this process as each job finishes."""
    from sublab.experiment.schedule import check_jobs, drive

    check_jobs(jobs)
    with ray_session(settings) as ray:
        remote = ray.remote(_in_worker)
        cwd = os.getcwd()
        running: dict[Any, Job] = {}

        def submit(job: Job) -> Any:
            cpus = job.num_cpus if job.num_cpus is not None else settings.num_cpus
            gpus = job.num_gpus if job.num_gpus is not None else settings.num_gpus
            task = remote.options(
                name=job.name, num_cpus=cpus, num_gpus=gpus, max_retries=settings.max_retries
            )
            return task.remote(cwd, max(1, int(cpus)), job.fn, *job.args)

        try:
            return drive(
                jobs,
                running,
                submit=submit,
                wait_some=lambda refs: ray.wait(refs, num_returns=1)[0],
                result=lambda ref: _get(ray, ref),
                on_done=on_done,
            )
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise


def _get(ray: Any, ref: Any) -> Any:
    """A finished task's result; a task's own exception is raised as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = err.cause
        if isinstance(cause, Exception) and not isinstance(cause, ray.exceptions.RayError):
            raise cause from err
        raise


def with_ray_address(spec: Any, address: str, source: str | Path) -> Any:
    """``spec`` set to run on Ray at ``address`` (its ``[ray]`` table kept otherwise), for the
    ``--ray-address`` flag. A ConfigError naming ``source`` when the address is malformed or
    the config's kind has no ``ray`` table."""
    from sublab.config import kind_of, validate
    from sublab.errors import ConfigError

    if "ray" not in type(spec).model_fields:
        raise ConfigError(source, [f"--ray-address: kind {kind_of(spec)!r} does not run on Ray"])
    current = spec.ray.model_dump() if spec.ray is not None else {}
    ray = validate({**current, "address": address}, RaySettings, f"{source} (--ray-address)")
    return spec.model_copy(update={"ray": ray})
