"""The command line's own error: a problem to print and exit on that is no answer of the coordinator
(those are ``taskpost.client.TaskpostError``)."""


class CliError(Exception):
    """An error to print and exit on."""
