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
