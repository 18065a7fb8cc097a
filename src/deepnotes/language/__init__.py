"""Language (notes, discussion 8, part 1): word embeddings and pretraining. Skip-gram word2vec
with the full softmax and with negative sampling, an ELMo-style bidirectional LSTM language model,
a BERT-style encoder pretrained by masked-language modelling and sentence order, and the
downstream comparison of fine-tuning against frozen features with few labels.

Data: the planted corpus and the text-file loader of :mod:`deepnotes.data.language`; models reuse
the sequence room (:mod:`deepnotes.sequence.recurrent`, :mod:`deepnotes.sequence.transformer`).
"""
