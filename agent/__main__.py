"""``python -m taskpost.agent``: run the agent command."""

from taskpost.agent.cli import main

if __name__ == "__main__":
    main()
