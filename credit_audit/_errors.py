"""The one exception class of the project."""


class CreditAuditError(Exception):
    """Bad input or an audit that cannot run; the message says what was expected.

    Messages quote the input (file, key, field) so that a user can act on them, e.g.
    ``checkpoint results/x.pt: key 'embed.weight' has shape (128, 3072), the model expects
    (256, 3072)``.
    """
