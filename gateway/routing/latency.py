"""Recent latency of a deployment, as exponentially decaying averages.

Two averages: time to first token (what a streaming client waits for) and total time (what a
unary client waits for). A success rate decays alongside, so a deployment that fails fast does
not look fast: the score is the expected wait for one good answer, latency / success rate.
"""

from __future__ import annotations

MIN_SUCCESS_RATE = 0.02


class LatencyStats:
    __slots__ = ("_alpha", "first_token_s", "success_rate", "total_s")

    def __init__(self, alpha: float) -> None:
        self._alpha = alpha
        self.first_token_s: float | None = None
        self.total_s: float | None = None
        self.success_rate = 1.0

    def success(self, first_token_s: float | None, total_s: float | None) -> None:
        if first_token_s is not None:
            self.first_token_s = self._mix(self.first_token_s, first_token_s)
        if total_s is not None:
            self.total_s = self._mix(self.total_s, total_s)
        self.success_rate = self._mix(self.success_rate, 1.0)

    def failure(self) -> None:
        self.success_rate = self._mix(self.success_rate, 0.0)

    def score(self, stream: bool) -> float | None:
        """Expected seconds to a good answer; None until the deployment has answered once."""
        seconds = self.first_token_s if stream else self.total_s
        if seconds is None:
            seconds = self.total_s if stream else None
        if seconds is None:
            return None
        return seconds / max(self.success_rate, MIN_SUCCESS_RATE)

    def _mix(self, average: float | None, sample: float) -> float:
        if average is None:
            return sample
        return average + self._alpha * (sample - average)
