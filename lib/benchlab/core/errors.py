"""One error type for bad input: the CLI and the plugin print it as one line, no traceback."""


class BenchlabError(Exception):
    """A user-facing error. The message names the file or option and the field at fault."""


def fail(where: str, field: str, problem: str) -> BenchlabError:
    """Build the one-line error: `where: field: problem`."""
    return BenchlabError(f"{where}: {field}: {problem}")
