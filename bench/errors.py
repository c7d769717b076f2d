"""The one exception type users see: a clear sentence, no traceback.

Anything raised as :class:`BenchError` is a problem with the user's input or environment
(a missing file, a bad option, an unknown name). The CLI prints its message and exits 1.
Any other exception is a bug and keeps its traceback.
"""


class BenchError(Exception):
    """A user-facing error whose message is one sentence naming the culprit."""
