"""One error type for bad input: the CLI and the plugin print it as one line, no traceback."""


class BenchlabError(Exception):
    """A user-facing error. The message names the file or option and the field at fault."""


def fail(where: str, field: str, problem: str) -> BenchlabError:
    """Build the one-line error: `where: field: problem`."""
    return BenchlabError(f"{where}: {field}: {problem}")


def first_line(e: BaseException) -> str:
    """The first line of an exception's message, or its type name when the message is empty."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_json(path, field: str = "top level") -> dict:
    """A JSON object from `path`, or a one-line BenchlabError naming the file (and `field`)."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise BenchlabError(f"{path}: no such file")
    if not path.is_file():  # a folder, or a link to a device (/dev/zero would never end)
        raise BenchlabError(f"{path}: not a regular file")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise BenchlabError(f"{path}: not valid JSON ({e})") from None
    except RecursionError:
        raise BenchlabError(f"{path}: JSON nested too deeply to read") from None
    except OSError as e:
        raise BenchlabError(f"{path}: cannot read ({e.strerror})") from None
    if not isinstance(data, dict):
        raise fail(str(path), field, "expected a JSON object")
    return data
