"""What a scenario is: a named way to build a world for any design."""

from __future__ import annotations

from collections.abc import Callable

import attrs

from actors import DESIGNS, World


@attrs.frozen
class Scenario:
    """A race to hunt: ``build(design)`` makes a fresh world for one run.

    ``story`` is the question from the review thread the scenario answers,
    shown before its results.
    """

    name: str
    summary: str
    story: str
    build: Callable[[str], World]
    designs: tuple[str, ...] = tuple(DESIGNS)
