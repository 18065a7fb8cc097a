"""Text for the language room: a corpus generated from a small probabilistic grammar with its
structure planted (so that every claim is checked against ground truth), and a loader for a
plain-text corpus a user brings (text8, a book).

**The planted grammar** (:func:`planted_corpus`). Every document has one *topic*, drawn from
:data:`TOPIC_NAMES` (``animals``, ``food``, ``travel``, ``sport``), and 2 or 3 sentences, all about
that topic. Each topic owns three word categories: a noun category (``animals``, ``foods``,
``places``, ``sports``), a verb category (``animal_verbs``: feeds, pets, ...; ``food_verbs``: eats,
cooks, ...) and an adjective category (``animal_adjectives``: furry, ...). A ``persons`` category
(child, farmer, ...) is shared by every topic. That makes 13 categories (:data:`CATEGORIES`), each
of ``words_per_category`` words: the first words of a built-in list (16 per category), then
generated names (``animal17``, ``foodverb40``, ...) when the list runs out. Every slot is filled
uniformly from its category, so **the words of one category are interchangeable** (same templates,
same neighbours, same frequency) and **categories are told apart by their contexts**: nouns follow
``a`` / ``the``, verbs follow a person, adjectives follow ``is`` or precede a noun; an animal noun
occurs with animal verbs and adjectives, never with food ones. There are two document templates
(``P`` a person, ``V`` / ``N`` / ``A`` a verb, noun, adjective of the topic; ``[...]`` the optional
third sentence, present with probability 1/2)::

    A:  a P V a N1 and a N2 .   {then|so} the P V the R .   [{later|finally} the P V the A O .]
    B:  a N is A .              {then|so} the P V it .      [{later|finally} the P V a N2 .]

``N1 != N2``, ``R`` is one of them and ``O`` the other: the second sentence **refers back** to the
first one's entities (the same person, one of its nouns), the third to the noun the second did not
take up. **Order**: a first sentence starts with ``a``, a second with ``then`` / ``so``, a third
with ``later`` / ``finally``, so the order of any consecutive pair
(:meth:`PlantedCorpus.sentence_pairs`) is decided by the first word of either sentence and is never
ambiguous; a model may also use the references (definite ``the`` for what ``a`` introduced). The
topic of each sentence (:attr:`PlantedCorpus.sentence_topics`, the downstream label) is carried only
by its topic's verbs, nouns and adjectives, words of categories with ``words_per_category`` members
each: with few labels most of them are never seen labelled, which is what pretrained representations
are for.

**Synonyms** (:data:`SYNONYMS`): in each category the first two built-in words form a synonym
group (``dog`` / ``hound``, ``eats`` / ``devours``, ...). They are strictly interchangeable:
swapping them everywhere leaves the corpus distribution unchanged. They are also co-referent: a
reference back (``R``, ``O``, the person) repeats the word or uses any member of its group
(uniformly). Other words of a category share its contexts and frequency but not co-reference.

**Polysemous words** (:data:`POLYSEMOUS`): each has two senses, named by the topics they belong
to; a document with a polysemous word is about one of its senses (uniformly), so **the sense
is set by the context words of the sense's category**, and a probe on a static vector is at
chance (1/2) by construction. ``bat`` (animals / sport) and ``jam`` (food / travel) are
**right-only** (:data:`RIGHT_ONLY`): they occur only as ``N`` of template B, the second word of
a document's first sentence, after ``a``: their whole left context is the same for both senses
and only the adjective to their right decides (``a bat is furry .`` / ``a bat is fast .``).
``duck`` (animals / food) and ``track`` (travel / sport) are decided **by both sides**: they
occur only as ``N1`` of template A, between a verb of the sense's topic and ``and a N2`` of the
same topic, and when referred back to, after a verb or an adjective of that topic. A document
carries a polysemous word with probability ``polysemous_fraction`` (the word and its sense
uniform); the topics of the eight senses cover each topic twice, so topics stay uniform.
:attr:`PlantedCorpus.senses` gives the sense id (0 or 1, the index into
:attr:`PlantedCorpus.polysemous`) at every occurrence, ``-1`` at every other token.

Polysemous words are in no category (:attr:`PlantedCorpus.category_of` holds the other content
words); function words (``a the and is it . then so later finally``) are in none either.
Vocabulary size: ``13 * words_per_category + 14`` words (e.g. 40 at 2, 118 at 8, 6514 at 500),
plus :data:`BERT_TOKENS`; every word of a category appears once there are enough documents
(about ``100 * words_per_category``). Everything is drawn from ``numpy.random.default_rng(seed)``:
the same arguments give the same corpus, on every machine.

**How the claims use it.** Word2vec's nearest-neighbour *category purity* compares each
word's neighbour's category in :attr:`PlantedCorpus.category_of` (chance: 1/13). The
contextual-embedding probes predict :attr:`PlantedCorpus.senses` at polysemous occurrences
(chance 1/2 for a static vector); on :attr:`PlantedCorpus.right_only` words a forward-only LM has
seen only ``a`` and stays at chance, while a backward LM sees the adjective. BERT's sentence-order
task reads :meth:`PlantedCorpus.sentence_pairs` (shown in random order). The downstream task
classifies sentences by :meth:`PlantedCorpus.topics` (4 labels, chance 1/4).

**User text** (:func:`read_text_corpus`): a UTF-8 file read under the bounded-reading rule of
:mod:`deepnotes.data.bounded` (its size on disk checked against the limit before it is read);
lowercased; tokens are words (letters and digits, inner apostrophes kept: ``don't``), other
characters are dropped; ``.``, ``!``, ``?`` and blank lines end sentences (text8 has none, so
its sentences are fixed-length chunks). Words seen fewer than ``min_count`` times become
``<unk>``. Refused with a :class:`~deepnotes.core.errors.DataFormatError` naming the file: a
missing or too large file, binary content (a NUL byte), bytes that are not UTF-8, a file without
words, a file where no word reaches ``min_count``.

Notes' section: discussion 8, part 1 (word2vec, ELMo, BERT, fine-tuning).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.core.text import shorten
from deepnotes.data.bounded import read_file
from deepnotes.data.parallel import Vocabulary

__all__ = [
    "BERT_TOKENS",
    "CATEGORIES",
    "FUNCTION_WORDS",
    "POLYSEMOUS",
    "RIGHT_ONLY",
    "SYNONYMS",
    "TOPIC_NAMES",
    "PlantedCorpus",
    "TextCorpus",
    "category_words",
    "encode_sentences",
    "language_vocabulary",
    "planted_corpus",
    "read_text_corpus",
]

BERT_TOKENS = ("[CLS]", "[SEP]", "[MASK]")
"""Ordinary tokens placed first in every language vocabulary (ids 4, 5, 6)."""

TOPIC_NAMES = ("animals", "food", "travel", "sport")
"""The topics of the planted corpus, in label order (the downstream labels 0..3)."""

# category -> (prefix of generated names, built-in words; the first two are synonyms)
_WORDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "persons": ("person", ("child", "kid", "man", "woman", "boy", "girl", "farmer", "teacher",
                           "doctor", "sailor", "pilot", "nurse", "uncle", "aunt", "baker",
                           "student")),
    "animals": ("animal", ("dog", "hound", "cat", "horse", "cow", "fox", "wolf", "rabbit",
                           "mouse", "goat", "sheep", "pig", "owl", "lion", "tiger", "bear")),
    "foods": ("food", ("soup", "broth", "apple", "bread", "cheese", "rice", "cake", "pear",
                       "egg", "pie", "salad", "plum", "melon", "pasta", "onion", "carrot")),
    "places": ("place", ("city", "metropolis", "village", "harbour", "island", "valley",
                         "museum", "castle", "forest", "desert", "market", "station", "airport",
                         "beach", "temple", "bridge")),
    "sports": ("sport", ("football", "soccer", "tennis", "golf", "hockey", "rugby", "baseball",
                         "boxing", "rowing", "skiing", "volleyball", "cycling", "judo",
                         "karate", "fencing", "archery")),
    "animal_verbs": ("animalverb", ("feeds", "nourishes", "pets", "chases", "brushes",
                                    "washes", "tames", "walks", "herds", "grooms", "catches",
                                    "strokes", "milks", "shears", "saddles", "hunts")),
    "food_verbs": ("foodverb", ("eats", "devours", "cooks", "bakes", "tastes", "slices",
                                "peels", "fries", "boils", "serves", "chops", "roasts",
                                "grills", "stirs", "seasons", "chews")),
    "travel_verbs": ("travelverb", ("visits", "tours", "reaches", "leaves", "explores",
                                    "crosses", "photographs", "enters", "maps", "approaches",
                                    "sketches", "navigates", "describes", "recommends",
                                    "admires", "books")),
    "sport_verbs": ("sportverb", ("plays", "practises", "coaches", "referees", "learns",
                                  "enjoys", "watches", "broadcasts", "organises", "teaches",
                                  "sponsors", "judges", "masters", "follows", "studies",
                                  "rates")),
    "animal_adjectives": ("animaladj", ("furry", "hairy", "wild", "tame", "hungry", "sleepy",
                                        "fierce", "shy", "noisy", "gentle", "playful",
                                        "scruffy", "loyal", "timid", "curious", "lazy")),
    "food_adjectives": ("foodadj", ("tasty", "delicious", "fresh", "salty", "sweet", "ripe",
                                    "spicy", "crunchy", "sour", "bitter", "juicy", "creamy",
                                    "stale", "smoky", "greasy", "bland")),
    "travel_adjectives": ("traveladj", ("crowded", "packed", "remote", "sunny", "ancient",
                                        "famous", "scenic", "quiet", "distant", "foggy",
                                        "historic", "touristy", "coastal", "windy", "peaceful",
                                        "exotic")),
    "sport_adjectives": ("sportadj", ("fast", "quick", "tough", "exciting", "popular",
                                      "competitive", "intense", "athletic", "demanding",
                                      "professional", "amateur", "tactical", "physical",
                                      "thrilling", "olympic", "dramatic")),
}  # fmt: skip

CATEGORIES = tuple(_WORDS)
"""The word categories of the planted corpus."""

# topic -> its (noun, verb, adjective) categories
_TOPIC_CATEGORIES = {
    "animals": ("animals", "animal_verbs", "animal_adjectives"),
    "food": ("foods", "food_verbs", "food_adjectives"),
    "travel": ("places", "travel_verbs", "travel_adjectives"),
    "sport": ("sports", "sport_verbs", "sport_adjectives"),
}

SYNONYMS = tuple(words[:2] for _, words in _WORDS.values())
"""The synonym groups: the first two built-in words of each category."""

POLYSEMOUS = {
    "bat": ("animals", "sport"),
    "jam": ("food", "travel"),
    "duck": ("animals", "food"),
    "track": ("travel", "sport"),
}
"""Polysemous word -> the names of its two senses (topic names; sense id = index)."""

RIGHT_ONLY = frozenset({"bat", "jam"})
"""Polysemous words whose sense only the words to their right decide."""

FUNCTION_WORDS = ("a", "the", "and", "is", "it", ".", "then", "so", "later", "finally")
"""The words of the planted corpus in no category."""

_SECOND_MARKERS = ("then", "so")
_THIRD_MARKERS = ("later", "finally")
_DRAWS = 20  # uniforms drawn per document (columns of the draw matrix)


def category_words(category: str, words_per_category: int) -> tuple[str, ...]:
    """The first ``words_per_category`` words of ``category``: built-in, then generated.

    Example:
        >>> category_words("animals", 3)
        ('dog', 'hound', 'cat')
        >>> category_words("animals", 18)[-2:]
        ('animal17', 'animal18')
    """
    if category not in _WORDS:
        raise ConfigError(f"category must be one of {CATEGORIES}, got {shorten(repr(category))}")
    prefix, words = _WORDS[category]
    extra = range(len(words) + 1, words_per_category + 1)
    return (*words, *(f"{prefix}{i}" for i in extra))[:words_per_category]


def language_vocabulary(sequences: Iterable[Sequence[str]], *, min_count: int = 1) -> Vocabulary:
    """The vocabulary of every language model: :data:`BERT_TOKENS` at ids 4-6, then the tokens
    seen at least ``min_count`` times, most frequent first, ties alphabetical.

    Example:
        >>> language_vocabulary([["b", "a", "b"]]).tokens[4:]
        ('[CLS]', '[SEP]', '[MASK]', 'b', 'a')
    """
    words = Vocabulary.build(sequences, min_count=min_count).tokens[4:]
    clash = sorted(set(words) & set(BERT_TOKENS))
    if clash:
        raise ValueError(f"the text must not contain the BERT tokens {BERT_TOKENS}, got {clash}")
    return Vocabulary([*BERT_TOKENS, *words])


def encode_sentences(sentences: Iterable[Sequence[str]], vocab: Vocabulary) -> list[list[int]]:
    """Ids of every sentence (``<unk>`` for tokens outside ``vocab``), no ``<sos>``/``<eos>``."""
    return [vocab.encode(sentence) for sentence in sentences]


# --------------------------------------------------------------------------------------------
# the planted corpus
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedCorpus:
    """A corpus generated by :func:`planted_corpus`, with its planted ground truth.

    Attributes:
        documents: documents -> sentences -> lowercase tokens.
        sentence_topics: the topic id of every sentence (index into ``topic_names``).
        senses: per token, ``-1``, or for a polysemous word its sense id (0 or 1) there.
        category_of: content word -> its category (polysemous and function words excluded).
        categories: the category names.
        synonyms: groups of strictly interchangeable words (same category).
        polysemous: polysemous word -> the names of its two senses (topic names).
        right_only: the polysemous words whose sense only their right context decides.
        topic_names: the topic names.
    """

    documents: list[list[list[str]]]
    sentence_topics: list[list[int]]
    senses: list[list[list[int]]]
    category_of: dict[str, str]
    categories: tuple[str, ...]
    synonyms: tuple[tuple[str, ...], ...]
    polysemous: dict[str, tuple[str, str]]
    right_only: frozenset[str]
    topic_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.documents)

    def sentences(self) -> list[list[str]]:
        """Every sentence, documents in order."""
        return [sentence for document in self.documents for sentence in document]

    def topics(self) -> list[int]:
        """The topic id of every sentence, aligned with :meth:`sentences`."""
        return [topic for topics in self.sentence_topics for topic in topics]

    def sentence_senses(self) -> list[list[int]]:
        """The sense ids of every sentence's tokens, aligned with :meth:`sentences`."""
        return [senses for document in self.senses for senses in document]

    def sentence_pairs(self) -> list[tuple[list[str], list[str]]]:
        """Every consecutive (first, second) pair of sentences within a document, in order."""
        return [
            (document[i], document[i + 1])
            for document in self.documents
            for i in range(len(document) - 1)
        ]

    def counts(self) -> Counter:
        """How often each token occurs."""
        return Counter(token for sentence in self.sentences() for token in sentence)

    def vocabulary(self, min_count: int = 1) -> Vocabulary:
        """:data:`BERT_TOKENS` first, then the words seen at least ``min_count`` times by
        descending count, ties alphabetical (see :func:`language_vocabulary`)."""
        return language_vocabulary(self.sentences(), min_count=min_count)

    def words_in(self, category: str) -> tuple[str, ...]:
        """The words of ``category`` (alphabetical)."""
        if category not in self.categories:
            raise ConfigError(
                f"category must be one of {self.categories}, got {shorten(repr(category))}"
            )
        return tuple(sorted(w for w, c in self.category_of.items() if c == category))


def _pick(u: float, n: int) -> int:
    """An index in ``0..n-1`` from a uniform ``u`` in [0, 1)."""
    return min(int(u * n), n - 1)


def _other_noun(i: int | None, n: int, u: float) -> int:
    """Index of a noun drawn uniformly among the ``n`` nouns of a category other than the one
    at index ``i`` (``None``: a polysemous word, so any noun); every noun stays equally likely
    overall."""
    if i is None:
        return _pick(u, n)
    j = _pick(u, n - 1)
    return j + (j >= i)


def planted_corpus(
    documents: int = 2000,
    *,
    words_per_category: int = 8,
    seed: int = 0,
    polysemous_fraction: float = 0.25,
) -> PlantedCorpus:
    """Generate documents from the planted grammar (see the module docstring).

    Arguments:
        documents: how many documents (2-3 sentences each).
        words_per_category: words in each of the 13 categories (at least 2; the vocabulary has
            ``13 * words_per_category + 14`` words).
        seed: seeds ``numpy.random.default_rng``; the same arguments give the same corpus.
        polysemous_fraction: share of documents built around a polysemous word, in [0, 1].

    Raises:
        ConfigError: an argument out of range.

    Example:
        >>> corpus = planted_corpus(3, seed=1)
        >>> len(corpus.documents), len(corpus.vocabulary()) > 7
        (3, True)
    """
    for name, value, minimum in (
        ("documents", documents, 1),
        ("words_per_category", words_per_category, 2),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    if not 0.0 <= polysemous_fraction <= 1.0:
        raise ConfigError(f"polysemous_fraction must be in [0, 1], got {polysemous_fraction!r}")

    words = {c: category_words(c, words_per_category) for c in CATEGORIES}
    group_of = {w: group for group in SYNONYMS for w in group}  # words_per_category >= 2
    poly_words = tuple(POLYSEMOUS)
    draws = np.random.default_rng(seed).random((documents, _DRAWS))  # (D, 20) uniforms

    def refer(word: str, u: float) -> str:
        """``word`` or, uniformly, any member of its synonym group."""
        group = group_of.get(word)
        return word if group is None else group[_pick(u, len(group))]

    docs: list[list[list[str]]] = []
    topics: list[list[int]] = []
    senses: list[list[list[int]]] = []
    for u in draws.tolist():
        poly, sense = None, -1
        if u[0] < polysemous_fraction:
            poly = poly_words[_pick(u[1], len(poly_words))]
            sense = _pick(u[2], 2)
            topic = POLYSEMOUS[poly][sense]
            template_b = poly in RIGHT_ONLY
        else:
            topic = TOPIC_NAMES[_pick(u[1], len(TOPIC_NAMES))]
            template_b = u[2] < 0.5
        noun_c, verb_c, adj_c = _TOPIC_CATEGORIES[topic]
        nouns, verbs, adjs = words[noun_c], words[verb_c], words[adj_c]
        person = words["persons"][_pick(u[3], words_per_category)]
        verb = [verbs[_pick(u[i], words_per_category)] for i in (4, 5, 6)]
        second = [_SECOND_MARKERS[_pick(u[7], 2)]]
        third = [_THIRD_MARKERS[_pick(u[8], 2)]]
        i1 = None if poly is not None else _pick(u[9], words_per_category)
        n1 = poly if i1 is None else nouns[i1]
        n2 = nouns[_other_noun(i1, words_per_category, u[10])]
        if template_b:
            doc = [
                ["a", n1, "is", adjs[_pick(u[11], words_per_category)], "."],
                [*second, "the", refer(person, u[12]), verb[1], "it", "."],
                [*third, "the", refer(person, u[13]), verb[2], "a", n2, "."],
            ]
        else:
            taken, other = (n1, n2) if u[14] < 0.5 else (n2, n1)
            doc = [
                ["a", person, verb[0], "a", n1, "and", "a", n2, "."],
                [*second, "the", refer(person, u[12]), verb[1], "the", refer(taken, u[15]), "."],
                [*third, "the", refer(person, u[13]), verb[2], "the",
                 adjs[_pick(u[11], words_per_category)], refer(other, u[16]), "."],
            ]  # fmt: skip
        doc = doc[: 3 if u[17] < 0.5 else 2]
        docs.append(doc)
        topics.append([TOPIC_NAMES.index(topic)] * len(doc))
        senses.append([[sense if t == poly else -1 for t in s] for s in doc])
    return PlantedCorpus(
        documents=docs,
        sentence_topics=topics,
        senses=senses,
        category_of={w: c for c in CATEGORIES for w in words[c]},
        categories=CATEGORIES,
        synonyms=SYNONYMS,
        polysemous=dict(POLYSEMOUS),
        right_only=RIGHT_ONLY,
        topic_names=TOPIC_NAMES,
    )


# --------------------------------------------------------------------------------------------
# a text file a user brings
# --------------------------------------------------------------------------------------------

_WHAT = "UTF-8 text file (a corpus such as text8 or a book)"
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")  # letters/digits, inner apostrophes kept
_SENTENCE_END = re.compile(r"[.!?]+|\n[^\S\n]*\n")  # end marks and blank lines


@dataclass(frozen=True)
class TextCorpus:
    """A tokenised user text.

    Attributes:
        path: the file it was read from.
        tokens: the lowercased words in order, those seen fewer than ``min_count`` times
            replaced by ``<unk>``.
        vocabulary: :data:`BERT_TOKENS`, then the kept words by descending count.
        sentence_starts: index in ``tokens`` of the first token of every sentence (0 first).
    """

    path: Path
    tokens: list[str]
    vocabulary: Vocabulary
    sentence_starts: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.tokens)

    def counts(self) -> Counter:
        """How often each token (``<unk>`` included) occurs."""
        return Counter(self.tokens)

    def sentences(self, max_length: int = 64) -> list[list[str]]:
        """The sentences, each cut into chunks of at most ``max_length`` tokens (text without
        sentence marks, such as text8, becomes fixed-length chunks)."""
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
            raise ConfigError(f"max_length must be an integer >= 1, got {max_length!r}")
        bounds = [*self.sentence_starts, len(self.tokens)]
        return [
            self.tokens[i : min(i + max_length, end)]
            for start, end in pairwise(bounds)
            for i in range(start, end, max_length)
        ]


def read_text_corpus(
    path: str | os.PathLike[str],
    *,
    min_count: int = 5,
    max_tokens: int | None = None,
    max_bytes: int | None = None,
) -> TextCorpus:
    """Read, tokenise and lowercase a UTF-8 text file (see the module docstring).

    Arguments:
        path: the file.
        min_count: fewest occurrences a word needs to keep its identity (rarer: ``<unk>``).
        max_tokens: keep only the first this many words (``None``: all).
        max_bytes: largest file accepted, in bytes (default:
            :func:`~deepnotes.data.bounded.max_bytes`, 4 GiB).

    Raises:
        ConfigError: ``min_count`` or ``max_tokens`` is not a positive integer.
        DataFormatError: the file is missing, too large, binary, not UTF-8, has no words, or no
            word occurs ``min_count`` times; the message names the file.

    Example:
        >>> corpus = read_text_corpus("text8", min_count=5, max_tokens=1_000_000)  # doctest: +SKIP
        >>> corpus.sentences()[0][:3]  # doctest: +SKIP
        ['anarchism', 'originated', 'as']
    """
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise ConfigError(f"min_count must be an integer >= 1, got {min_count!r}")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise ConfigError(f"max_tokens must be None or an integer >= 1, got {max_tokens!r}")
    path = Path(path)
    data = read_file(path, _WHAT, limit=max_bytes)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(
            f"{path}: binary data (a NUL byte) at byte offset {nul}; expected a {_WHAT}"
        )
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").lower()
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02X} at byte offset {exc.start} is not "
            f"valid UTF-8; expected a {_WHAT}"
        ) from None
    words: list[str] = []
    starts: list[int] = []
    for piece in _SENTENCE_END.split(text):
        found = _WORD.findall(piece)
        if not found:
            continue
        starts.append(len(words))
        words += found
        if max_tokens is not None and len(words) >= max_tokens:
            del words[max_tokens:]
            break
    if not words:
        raise DataFormatError(
            f"{path}: empty: no words found ({len(data)} bytes); expected a {_WHAT}"
        )
    counts = Counter(words)
    if max(counts.values()) < min_count:
        raise DataFormatError(
            f"{path}: no word occurs min_count={min_count} times (the most frequent occurs "
            f"{max(counts.values())} times in {len(words)} words); expected a longer {_WHAT} or "
            f"a smaller min_count"
        )
    tokens = [w if counts[w] >= min_count else "<unk>" for w in words]
    return TextCorpus(
        path=path,
        tokens=tokens,
        vocabulary=language_vocabulary([words], min_count=min_count),
        sentence_starts=tuple(starts),
    )
