"""Readers for BELLE's published file formats and Alpaca-style instruction files."""

from belle_kedro.formats.errors import FormatError

__all__ = ["FormatError"]
