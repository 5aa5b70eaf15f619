"""Command line, pipeline configuration and static checks of the MLOps application."""
