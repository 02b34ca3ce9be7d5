"""The organism cache key follows the build code, not its documentation."""

from __future__ import annotations

from sublab.organism.cache import code_text

SOURCE = '''"""Module doc."""
from pydantic import Field


class Spec:
    """Class doc."""

    steps: int = Field(700, description="Optimiser steps.")


def build(x):
    """Function doc."""
    return x * 2  # a comment
'''


def test_documentation_edits_keep_the_key():
    edited = (
        SOURCE.replace("Module doc.", "Another module doc.")
        .replace("Class doc.", "A class.")
        .replace("Function doc.", "Builds.")
        .replace("Optimiser steps.", "How many optimiser steps.")
        .replace("# a comment", "# another comment")
    )
    assert code_text(edited) == code_text(SOURCE)


def test_code_edits_change_the_key():
    assert code_text(SOURCE.replace("Field(700", "Field(800")) != code_text(SOURCE)
    assert code_text(SOURCE.replace("x * 2", "x * 3")) != code_text(SOURCE)
    # a string that is not a docstring or a description is code (a prompt template, say)
    with_template = SOURCE.replace("return x * 2", 'return f"{x} is a number"')
    assert code_text(with_template.replace("is a number", "is one number")) != code_text(
        with_template
    )


def test_organism_model_is_the_cached_base_keyed_by_its_spec(organism_spec, organism_base):
    """The experiment's and the audit benchmark's bases: the cached folder, keyed by the spec
    (so a changed spec re-keys every artifact computed from the base)."""
    from sublab.audit.benchmark import organism_base as audit_base
    from sublab.audit.spec import AuditBenchmarkSpec
    from sublab.experiment.run import base_model
    from sublab.experiment.spec import BasesSpec, ExperimentSpec
    from sublab.organism.cache import organism_key, organism_model

    model = organism_model(organism_spec, "organism-0")
    assert model.ref.path == str(organism_base) and model.ref.adapter is None
    assert model.key == organism_key(organism_spec) and model.label == "organism-0"
    spec = ExperimentSpec(
        name="x", seeds=[0], bases=BasesSpec(organism=organism_spec),
        controls={"cross_model": False},
    )  # fmt: skip
    assert base_model(spec, 0) == model
    assert audit_base(AuditBenchmarkSpec(name="x", organism=organism_spec), 0) == model
    assert spec.bases.seed_organism(5).seed == 5
    assert organism_key(spec.bases.seed_organism(5)) != model.key
