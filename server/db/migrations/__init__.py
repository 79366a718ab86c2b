"""Alembic revisions of the coordinator's tables (``versions/``), run by ``server.db.migrate``.

``env.py`` is Alembic's environment: it runs the revisions on the connection that
``server.db.migrate`` hands it, so no ``alembic.ini`` is needed.
"""
