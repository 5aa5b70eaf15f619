"""The contract the CLI, the workflows and the local twin share: it imports nothing else of the project."""
