"""Sequence models, trained: RNN, LSTM, Luong attention, the transformer (notes, discussions 6-7).

The NumPy mechanics of the same pieces (forward and backward by hand) live in
:mod:`deepnotes.mechanics`; this room is the PyTorch side, each hand-written module tested
against the library one.
"""
