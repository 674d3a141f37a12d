"""A data-centre kernel in the Mesos mould, in Python."""

__version__ = "1.11.0"
