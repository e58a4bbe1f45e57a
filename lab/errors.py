"""The one exception the lab raises for problems a person can fix."""

from __future__ import annotations


class LabError(Exception):
    """A problem with the lab, with the fix to try; printed without a traceback."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}\nFix: {self.fix}"
        return self.problem
