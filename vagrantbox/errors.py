"""The one error type the box builder raises: its message names the problem and the fix."""


class BoxError(Exception):
    """A box could not be built, added or booted; str(error) says why and what to do."""
