"""Which deployment serves a request.

For now a public model maps to its deployments in configured order and the first is tried;
strategies, retries, fallbacks and circuit breaking grow here without changing the callers.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateway.config import Deployment, ModelGroup
from gateway.context import RequestContext
from gateway.errors import ModelNotFound


class Router:
    def __init__(self, groups: list[ModelGroup]) -> None:
        self._groups = {group.name: group for group in groups}

    @property
    def groups(self) -> list[ModelGroup]:
        return list(self._groups.values())

    def group(self, model: str) -> ModelGroup:
        group = self._groups.get(model)
        if group is None:
            raise ModelNotFound(
                f"The model `{model}` does not exist or you do not have access to it.", param="model"
            )
        return group

    def plan(self, ctx: RequestContext) -> Iterator[Deployment]:
        """The deployments to try for this request, in order."""
        yield self.group(ctx.model).deployments[0]
