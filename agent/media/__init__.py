"""Shared pieces of the media handlers: inputs, models, engines."""
