"""Skip-gram with negative sampling: deepnotes' :mod:`deepnotes.language.word2vec` vs gensim's
``Word2Vec(sg=1, hs=0)``.

Run: ``python benchmarks/word2vec_vs_gensim.py [--documents 20000] [--epochs 5] [--threads 1]
[--text PATH]``. Not part of the test suite; needs ``pip install gensim`` (the ``.[bench]``
extra).

Goal (issue 17): equal category purity at no more than twice gensim's time.

Protocol: the same corpus (the planted one, :func:`deepnotes.data.language.planted_corpus`,
or with ``--text`` a UTF-8 file read by :func:`deepnotes.data.language.read_text_corpus`), the
same window (fixed, gensim's ``shrink_windows=False``), dimension, negatives, subsampling
threshold, epochs and minimum count. **gensim runs with ``workers=1``** and deepnotes with
``torch.set_num_threads(1)`` (``--threads``): a single-core comparison. Each side is timed once
from the token lists to the trained vectors (gensim's vocabulary scan included, deepnotes'
pair generation included). Words per second: corpus tokens x epochs / seconds. Category purity
(:func:`deepnotes.language.word2vec.category_purity`, the planted corpus only): deepnotes'
embedding is ``(u + v) / 2`` (the notes'), gensim's its input vectors ``wv`` (its default
output). Ratio = deepnotes' time / gensim's. Learning rates are each library's own:
gensim's default 0.025 per pair (its sequential SGD), deepnotes' 1.0 on the per-row mean of a
minibatch (:class:`~deepnotes.language.word2vec.SkipGram`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from gensim.models import Word2Vec

from deepnotes.core.context import RunContext
from deepnotes.data.language import encode_sentences, planted_corpus, read_text_corpus
from deepnotes.language.word2vec import Word2VecSettings, category_purity, train_word2vec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", type=Path, default=None, help="a UTF-8 text file instead")
    parser.add_argument("--documents", type=int, default=20_000, help="planted corpus size")
    parser.add_argument("--words-per-category", type=int, default=8)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--subsample", type=float, default=1e-3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=1.0, help="deepnotes' learning rate")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.text is None:
        corpus = planted_corpus(
            args.documents, words_per_category=args.words_per_category, seed=args.seed
        )
        sentences, category_of = corpus.sentences(), corpus.category_of
        vocab = corpus.vocabulary(min_count=args.min_count)
        source = f"planted corpus, {args.documents} documents"
    else:
        text = read_text_corpus(args.text, min_count=args.min_count)
        sentences, category_of, vocab = text.sentences(), None, text.vocabulary
        source = str(args.text)
    tokens = sum(len(s) for s in sentences)
    print(
        f"{source}: {tokens:,} tokens, |V| = {len(vocab)}; dim {args.dim}, window "
        f"{args.window}, {args.negatives} negatives, subsample {args.subsample:g}, "
        f"{args.epochs} epochs; one core (gensim workers=1, torch threads {args.threads})"
    )

    start = time.perf_counter()
    model = Word2Vec(
        sentences,
        vector_size=args.dim,
        window=args.window,
        min_count=args.min_count,
        sg=1,
        hs=0,
        negative=args.negatives,
        ns_exponent=0.75,
        sample=args.subsample,
        epochs=args.epochs,
        workers=1,
        seed=args.seed,
        shrink_windows=False,
    )
    gensim_seconds = time.perf_counter() - start
    theirs = torch.zeros(len(vocab), args.dim)
    for i, word in enumerate(vocab.tokens):
        if word in model.wv:
            theirs[i] = torch.from_numpy(model.wv[word].copy())

    settings = Word2VecSettings(
        objective="negative",
        dim=args.dim,
        window=args.window,
        negatives=args.negatives,
        subsample=args.subsample,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
    )
    with tempfile.TemporaryDirectory() as folder:
        ctx = RunContext("bench", args.seed, torch.device("cpu"), Path(folder), show_progress=False)
        start = time.perf_counter()
        ids = encode_sentences(sentences, vocab)
        ours, _ = train_word2vec(ids, len(vocab), None, settings, ctx, tag="bench")
        ours_seconds = time.perf_counter() - start

    rows = []
    for name, emb, seconds in (
        ("deepnotes (u + v) / 2", ours, ours_seconds),
        ("gensim Word2Vec sg=1 hs=0 (wv)", theirs, gensim_seconds),
    ):
        purity = category_purity(emb, vocab, category_of, 5)[0] if category_of else float("nan")
        rows.append((name, seconds, tokens * args.epochs / seconds, purity))
    print()
    print("| implementation | seconds | words / s | ratio (time) | category purity (k=5) |")
    print("|---|---:|---:|---:|---:|")
    for name, seconds, wps, purity in rows:
        print(
            f"| {name} | {seconds:.2f} | {wps:,.0f} | {seconds / gensim_seconds:.2f} "
            f"| {purity:.3f} |"
        )
    ratio = ours_seconds / gensim_seconds
    if category_of:
        goal = ratio <= 2 and rows[0][3] >= rows[1][3] - 1e-9
        print(
            f"\ngoal (purity >= gensim's at <= 2x its time): {'met' if goal else 'NOT met'} "
            f"(ratio {ratio:.2f}; chance {category_purity(ours, vocab, category_of, 5)[1]:.3f})"
        )
    else:
        print(f"\nratio {ratio:.2f} (no categories on a user file: purity not measured)")


if __name__ == "__main__":
    main()
