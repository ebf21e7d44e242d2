"""The error raised when policy files cannot be loaded."""

from __future__ import annotations


class PolicyError(Exception):
    """A problem in a policy file, located by file and line.

    Attributes:
        file: Path of the offending file, as it was opened.
        line: 1-based line number; 0 when the problem concerns the whole file.
        message: What is wrong, phrased for a policy author.
    """

    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message
