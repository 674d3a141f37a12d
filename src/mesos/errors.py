"""The project's exception tree.

    MesosError
     +-- ValidationError     bad input from a client: HTTP 400 / one-line CLI error
     +-- NotFoundError       an id that names nothing we know: HTTP 404 (or 400 where Mesos says so)
     +-- ConflictError       a valid request that contradicts current state: HTTP 409
     +-- ForbiddenError      a caller acting for someone it is not: HTTP 403

Expected outcomes (a declined offer, a task that does not fit) are values, not
exceptions; these classes are for input that must be refused at the edge.
"""

from __future__ import annotations


class MesosError(Exception):
    """Root of every error this package raises on purpose."""


class ValidationError(MesosError):
    """Input that does not parse or does not make sense; the message names the field."""


class NotFoundError(MesosError):
    """A reference to something that does not exist."""


class ConflictError(MesosError):
    """A request that is well formed but conflicts with the current state."""


class ForbiddenError(MesosError):
    """A request made on behalf of someone else, or before subscribing."""
