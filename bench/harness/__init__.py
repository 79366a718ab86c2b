"""The benchmark harness behind ``python -m bench``: Taskpost, RQ and Celery side by side."""
