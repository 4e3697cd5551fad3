"""The base of every part of a point record: unknown keys are kept (and written back after the known ones)."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Part(BaseModel):
    """A part of the record: unknown keys are kept (and written back after the known ones)."""

    # an enum field (a status: plan.values.Word) keeps its word, as read from and written to JSON
    model_config = ConfigDict(extra="allow", populate_by_name=True, use_enum_values=True)
