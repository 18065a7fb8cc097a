"""Meta-learning (notes, discussion 12): learning to learn from many small tasks.

Every method shares the notes' interface ``phi_i = f_adapt(theta, D_i^tr)``: MAML adapts the
parameters by gradient steps on the support set (second order, or first order without the inner
graph, :mod:`deepnotes.meta.maml`); Prototypical and Matching Networks adapt by embedding the
support set; a black-box learner reads it with an LSTM; RL^2 keeps a recurrent policy's hidden
state across the episodes of one task. Data come from :mod:`deepnotes.data.tasks` (sinusoids),
:mod:`deepnotes.data.glyphs` (procedural characters like Omniglot) and
:mod:`deepnotes.data.episodes` (N-way K-shot episodes).
"""
