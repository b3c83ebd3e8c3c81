"""naive-mp: the naive trading strategy with one OS process per trader."""

__version__ = "0.1.0"
