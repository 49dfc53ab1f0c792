"""The root of every error swagbench raises for a user's mistake.

This module imports nothing, so any module (CLI, worker, backend) can name an error type without loading torch.
The CLI prints any :class:`SwagbenchError` as one line and exits with code 2. Each subclass also derives from
the builtin it replaces (ValueError, KeyError, ...), so ``except ValueError`` keeps working.
"""


class SwagbenchError(Exception):
    """A user's mistake or an impossible request, with a message that names the problem and the fix."""
