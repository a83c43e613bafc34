"""Flow parameters shared by the steps, typed and described for the Prefect UI form."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

AsOf = Annotated[
    datetime | None,
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
    int | None,
    Field(ge=1, le=50_000, description="Instances per batch (default from settings)."),
]
InstanceIds = Annotated[
    list[str] | None,
    Field(
        max_length=10_000,
        description="Only these instance ids (default: the whole fleet).",
    ),
]
