"""The one exception type that commands turn into a one-line message instead of a traceback."""


class LandmarkError(Exception):
    """A problem with the user's input or setup; the message says what to fix."""
