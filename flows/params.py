"""Flow parameters shared by the steps, typed and described for the Prefect UI form.

An optional parameter is ``X | SkipJsonSchema[None]``: left empty it takes its default,
and the form shows one input of type X (a ``null`` branch would show as a second input
that says 'Property is type "None"').
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

AsOf = Annotated[
    datetime | SkipJsonSchema[None],
    Field(
        description="Evaluate the lifecycle as of this moment (default: now). Reruns and "
        "backfills give a past moment; a real run refuses one more than 5 minutes ahead of "
        "the clock (a dry run may plan any), and any run one outside the years 1970-2999 or "
        "without an offset.",
    ),
]
DryRun = Annotated[
    bool,
    Field(description="Only compute and publish the plan: change nothing, send nothing."),
]
BatchSize = Annotated[
    Annotated[int, Field(ge=1, le=50_000)] | SkipJsonSchema[None],
    Field(description="Instances per batch (default from settings)."),
]
InstanceIds = Annotated[
    Annotated[list[str], Field(max_length=10_000)] | SkipJsonSchema[None],
    Field(description="Only these instance ids (default: the whole fleet)."),
]
# Printable ASCII without spaces: a key is compared exactly, and one with a space, a line
# break or an invisible character would look like another key wherever it is shown.
RequestKeyText = Annotated[str, Field(max_length=64, pattern=r"^[!-~]*$")]
"""A request key as given: the CLI checks its ``--request-key`` against the same type."""
RequestKey = Annotated[
    RequestKeyText | SkipJsonSchema[None],
    Field(description="Makes a retried request a no-op (default: the run id)."),
]
