"""deepnotes: deep-learning course notes as tested software."""

__version__ = "0.1.0"
