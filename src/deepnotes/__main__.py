"""``python -m deepnotes`` (also what ``torchrun -m deepnotes`` runs on every rank)."""

from deepnotes.cli import main

if __name__ == "__main__":
    main()
