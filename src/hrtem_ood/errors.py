"""The one base class of user errors.

A :class:`UserError` is a problem with what the user gave (a params key, an input file, a results
table): the command line prints its message as one line and exits with status 2. Every other
exception is a bug or an environment failure and keeps its traceback. Standard library only: every module may
use it without adding a dependency.
"""


class UserError(Exception):
    """Bad input. The message names the file or key and the problem, in one line."""


def run_guarded(prog: str, body) -> int:
    """Call ``body()``; a :class:`UserError` is printed as one line on stderr and gives exit status 2."""
    import sys

    try:
        body()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    return 0
