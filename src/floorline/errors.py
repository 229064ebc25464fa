"""One error type for bad input: the CLI prints its message on one line and exits 2."""


class InputError(ValueError):
    """Bad user input. The message names the field and what is allowed."""

    exit_code = 2


class EvidenceMismatch(RuntimeError):
    """An evidence packet failed verification (exit 1)."""

    exit_code = 1
