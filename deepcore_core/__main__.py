"""``python -m deepcore_core`` runs the CLI."""

from deepcore_core.cli import main

main()
