"""Talking to OpenAI-compatible chat APIs, for the ``analyze`` and ``describe`` handlers.

``profiles`` (which API, model, key variable, context size and prices a job gets), ``client``
(one request, with our own cancellable retries and error kinds), ``chunking`` and ``analysis``
(prompts over a text, map-reduce past the context), ``sources`` and ``images`` (a job's text
and image), ``runtime`` (the handlers' shared base).
"""
