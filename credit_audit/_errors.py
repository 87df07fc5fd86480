"""The one exception class of the project."""


class CreditAuditError(Exception):
    """Bad input or an audit that cannot run; the message says what was expected.

    Messages quote the input (file, key, field) so that a user can act on them, e.g.
    ``checkpoint results/x.pt: key 'embed.weight' has shape (128, 3072), the model expects
    (256, 3072)``.
    """


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of a foreign exception's message, cut to ``limit`` characters: what our
    messages quote of it (torch's own can run to thousands of characters).

    Example:
        >>> first_line(ValueError("bad shape\\nat line 3")), first_line(KeyError())
        ('bad shape', '')
        >>> len(first_line(OSError("x" * 300)))
        200
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
