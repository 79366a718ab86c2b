"""A small news article with navigation and a footer, for the ``webpage`` tests."""

from __future__ import annotations

ARTICLE = """<!DOCTYPE html>
<html lang="en-GB"><head><meta charset="utf-8">
<title>The last lighthouse keepers | Coast News</title>
<meta name="author" content="Ada Fields">
<meta property="article:published_time" content="2024-03-05T10:00:00Z"></head>
<body><nav><a href="/">Home</a> <a href="/about">About us</a> <a href="/shop">Shop</a></nav>
<article><h1>The last lighthouse keepers</h1>
<p>For more than a century the keepers of the northern light climbed the long stair every evening
to light the lamp above the harbour, and they wrote down the weather in a leather book.</p>
<h2>Winter storms</h2>
<p>In the winter of the great storm the keepers stayed awake for four nights and kept the light
burning while the waves broke over the rocks below the tower.</p>
<ul><li>Oil lamps until the war</li><li>Electric light after that</li></ul></article>
<footer>Copyright 2024 Coast News. All rights reserved. <a href="/privacy">Privacy policy</a></footer>
</body></html>"""

MAIN_TEXT = "the keepers stayed awake for four nights"
BOILERPLATE = ("About us", "All rights reserved", "Privacy policy", "Shop")

ROBOTS = "User-agent: *\nDisallow: /private/\n\nUser-agent: taskpost\nDisallow: /members/\n"
"""Disallows ``/members/`` for taskpost (and ``/private/`` for everyone else)."""
