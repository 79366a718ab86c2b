"""Generators of test media: speech, images, documents."""
