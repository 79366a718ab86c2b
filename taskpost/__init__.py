"""Taskpost: the command line that ties the coordinator and the agent together."""
