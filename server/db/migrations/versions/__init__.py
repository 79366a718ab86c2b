"""One module per revision, oldest first; ``server.db.migrate`` explains how to add one."""
