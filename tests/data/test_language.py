"""Tests for deepnotes.data.language: every structure the planted grammar promises is checked on
a generated corpus (categories, synonyms, polysemous senses, right-only words, sentence order,
topics, vocabulary), and the text-file loader on tiny files written here."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from deepnotes.core.errors import ConfigError, DataFormatError
from deepnotes.data.language import (
    BERT_TOKENS,
    CATEGORIES,
    FUNCTION_WORDS,
    POLYSEMOUS,
    RIGHT_ONLY,
    TOPIC_NAMES,
    PlantedCorpus,
    category_words,
    encode_sentences,
    language_vocabulary,
    planted_corpus,
    read_text_corpus,
)
from deepnotes.data.parallel import UNK_ID

# the categories of each topic's sentences (persons are shared by every topic)
TOPIC_CATEGORIES = {
    "animals": {"persons", "animals", "animal_verbs", "animal_adjectives"},
    "food": {"persons", "foods", "food_verbs", "food_adjectives"},
    "travel": {"persons", "places", "travel_verbs", "travel_adjectives"},
    "sport": {"persons", "sports", "sport_verbs", "sport_adjectives"},
}
RANK = {"a": 0, "then": 1, "so": 1, "later": 2, "finally": 2}  # first word -> sentence position


@pytest.fixture(scope="module")
def corpus() -> PlantedCorpus:
    """Small categories and many documents: every word sees every context."""
    return planted_corpus(4000, words_per_category=3, seed=3)


def abstract(sentence: list[str], corpus: PlantedCorpus) -> tuple[str, ...]:
    """The sentence with every category word replaced by its category."""
    return tuple(corpus.category_of.get(t, t) for t in sentence)


def frames(corpus: PlantedCorpus) -> dict[str, set[tuple[tuple[str, ...], int]]]:
    """Word -> its contexts: (the abstracted sentence, the word's position in it)."""
    out: dict[str, set[tuple[tuple[str, ...], int]]] = defaultdict(set)
    for sentence in corpus.sentences():
        shape = abstract(sentence, corpus)
        for i, token in enumerate(sentence):
            out[token].add((shape, i))
    return out


def occurrences(corpus: PlantedCorpus, word: str):
    """(document, sentence index, position, sense) of every occurrence of ``word``."""
    for d, document in enumerate(corpus.documents):
        for s, sentence in enumerate(document):
            for i, token in enumerate(sentence):
                if token == word:
                    yield d, s, i, corpus.senses[d][s][i]


# --------------------------------------------------------------------------------------------
# generation: determinism, speed, shape
# --------------------------------------------------------------------------------------------


def test_same_arguments_give_the_same_corpus_and_another_seed_another() -> None:
    a, b = planted_corpus(300, seed=5), planted_corpus(300, seed=5)
    assert a.documents == b.documents
    assert a.senses == b.senses and a.sentence_topics == b.sentence_topics
    assert planted_corpus(300, seed=6).documents != a.documents
    assert planted_corpus(200, seed=5).documents == a.documents[:200]  # one row of draws each


def test_two_thousand_documents_build_in_under_half_a_second() -> None:
    best = float("inf")
    for _ in range(3):  # best of three: the CPU is shared
        start = time.perf_counter()
        planted_corpus(2000)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5


def test_documents_have_two_or_three_aligned_sentences(corpus: PlantedCorpus) -> None:
    lengths = Counter(len(document) for document in corpus.documents)
    assert set(lengths) == {2, 3}
    assert 0.45 < lengths[3] / len(corpus) < 0.55
    for document, topics, senses in zip(
        corpus.documents, corpus.sentence_topics, corpus.senses, strict=True
    ):
        assert len(topics) == len(document) == len(senses)
        assert len(set(topics)) == 1  # one topic per document
        assert [len(s) for s in senses] == [len(s) for s in document]
        assert all(t == t.lower() for sentence in document for t in sentence)
    assert len(corpus.sentences()) == len(corpus.topics()) == len(corpus.sentence_senses())
    assert len(corpus.sentence_pairs()) == sum(len(d) - 1 for d in corpus.documents)


def test_topics_are_balanced(corpus: PlantedCorpus) -> None:
    share = Counter(topics[0] for topics in corpus.sentence_topics)
    assert sorted(share) == [0, 1, 2, 3]
    assert all(0.22 < n / len(corpus) < 0.28 for n in share.values())


def test_every_word_is_a_category_function_or_polysemous_word(corpus: PlantedCorpus) -> None:
    known = set(corpus.category_of) | set(FUNCTION_WORDS) | set(POLYSEMOUS)
    assert set(corpus.counts()) == known  # every planted word is used, nothing else
    assert not set(corpus.category_of) & set(POLYSEMOUS)


# --------------------------------------------------------------------------------------------
# categories and synonyms
# --------------------------------------------------------------------------------------------


def test_each_category_s_words_appear_in_exactly_the_same_contexts(corpus: PlantedCorpus) -> None:
    seen, counts = frames(corpus), corpus.counts()
    for category in CATEGORIES:
        words = corpus.words_in(category)
        assert len(words) == 3
        mean = sum(counts[w] for w in words) / len(words)
        assert all(abs(counts[w] - mean) < 5 * mean**0.5 for w in words)  # same frequency
        reference = seen[words[0]]
        assert len(reference) >= 6
        for word in words[1:]:
            assert seen[word] == reference, (category, word)


def test_categories_are_told_apart_by_their_contexts(corpus: PlantedCorpus) -> None:
    """Outside the sentences of polysemous words, no context is shared by two categories."""
    seen = frames(corpus)
    by_category = {
        c: {f for f in seen[corpus.words_in(c)[0]] if not set(f[0]) & set(POLYSEMOUS)}
        for c in CATEGORIES
    }
    for i, first in enumerate(CATEGORIES):
        for second in CATEGORIES[i + 1 :]:
            assert not by_category[first] & by_category[second], (first, second)


def test_sentences_use_only_their_topic_s_categories(corpus: PlantedCorpus) -> None:
    for sentence, topic in zip(corpus.sentences(), corpus.topics(), strict=True):
        used = {corpus.category_of[t] for t in sentence if t in corpus.category_of}
        assert used <= TOPIC_CATEGORIES[TOPIC_NAMES[topic]]


def test_synonyms_are_interchangeable_and_co_referent(corpus: PlantedCorpus) -> None:
    seen, counts = frames(corpus), corpus.counts()
    assert len(corpus.synonyms) == len(CATEGORIES)
    for group in corpus.synonyms:
        assert len({corpus.category_of[w] for w in group}) == 1
        assert len({frozenset(seen[w]) for w in group}) == 1
        a, b = (counts[w] for w in group)
        assert abs(a - b) < 4 * (a + b) ** 0.5  # same frequency, within sampling noise
    group_of = {w: set(g) for g in corpus.synonyms for w in g}
    switched = 0
    for document in corpus.documents:
        first, second = document[0], document[1]
        if first[2] == "is":  # template B: the second sentence says "it"
            assert second[-2] == "it"
            continue
        n1, n2, referent = first[4], first[7], second[-2]
        assert n2 != n1
        assert any(referent in group_of.get(n, {n}) for n in (n1, n2))
        assert second[2] in group_of.get(first[1], {first[1]})  # the same person
        switched += referent not in (n1, n2)
    assert switched > 50  # references do use the other synonym


# --------------------------------------------------------------------------------------------
# polysemous words
# --------------------------------------------------------------------------------------------


def test_sense_labels_match_the_topic_and_the_context(corpus: PlantedCorpus) -> None:
    for d, document in enumerate(corpus.documents):
        for s, sentence in enumerate(document):
            topic = TOPIC_NAMES[corpus.sentence_topics[d][s]]
            for token, sense in zip(sentence, corpus.senses[d][s], strict=True):
                if token in POLYSEMOUS:
                    assert corpus.polysemous[token][sense] == topic
                else:
                    assert sense == -1
    for word in POLYSEMOUS:
        senses = Counter(sense for *_, sense in occurrences(corpus, word))
        assert set(senses) == {0, 1}
        assert 0.4 < senses[0] / sum(senses.values()) < 0.6  # a static vector is at chance


def test_right_only_words_have_the_same_left_context_for_both_senses(
    corpus: PlantedCorpus,
) -> None:
    for word in RIGHT_ONLY:
        left: dict[int, Counter] = {0: Counter(), 1: Counter()}
        for d, s, i, sense in occurrences(corpus, word):
            left[sense][tuple(corpus.documents[d][s][:i])] += 1
            assert s == 0  # the first sentence of a document: nothing before it
            right = corpus.documents[d][s][i + 2]  # "<word> is <adjective>"
            assert corpus.category_of[right] in TOPIC_CATEGORIES[corpus.polysemous[word][sense]]
        assert set(left[0]) == set(left[1]) == {("a",)}


def test_two_sided_words_are_decided_by_each_side(corpus: PlantedCorpus) -> None:
    two_sided = set(POLYSEMOUS) - RIGHT_ONLY
    assert len(two_sided) == 2
    for word in two_sided:
        sense_of_left: dict[str, set[int]] = defaultdict(set)
        for d, s, i, sense in occurrences(corpus, word):
            sentence = corpus.documents[d][s]
            # the nearest word on the left that is not a determiner: a verb or an adjective
            left = sentence[i - 2] if sentence[i - 1] in ("a", "the") else sentence[i - 1]
            sense_of_left[left].add(sense)
            topic_categories = TOPIC_CATEGORIES[corpus.polysemous[word][sense]]
            assert corpus.category_of[left] in topic_categories
            assert corpus.category_of[left].endswith(("_verbs", "_adjectives"))
            if s == 0:  # "... a <word> and a <noun of the sense's topic> ."
                assert sentence[i + 1 : i + 3] == ["and", "a"]
                assert corpus.category_of[sentence[i + 3]] in topic_categories
        assert all(len(senses) == 1 for senses in sense_of_left.values())  # left decides


def test_polysemous_fraction_sets_how_many_documents_carry_one() -> None:
    none = planted_corpus(200, polysemous_fraction=0.0, seed=1)
    assert all(s == -1 for sentence in none.sentence_senses() for s in sentence)
    every = planted_corpus(200, polysemous_fraction=1.0, seed=1)
    assert all(any(t in POLYSEMOUS for t in document[0]) for document in every.documents)


# --------------------------------------------------------------------------------------------
# sentence order
# --------------------------------------------------------------------------------------------


def test_sentence_pairs_are_ordered_and_their_order_is_decidable(corpus: PlantedCorpus) -> None:
    pairs = corpus.sentence_pairs()
    assert len(pairs) > len(corpus)
    for first, second in pairs:
        assert RANK[first[0]] + 1 == RANK[second[0]]  # swapped, the ranks decrease: unambiguous
    for document in corpus.documents:
        assert [RANK[sentence[0]] for sentence in document] == list(range(len(document)))


# --------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("words_per_category", [2, 8, 20])
def test_vocabulary_scales_with_words_per_category(words_per_category: int) -> None:
    corpus = planted_corpus(200 * words_per_category, words_per_category=words_per_category)
    vocab = corpus.vocabulary()
    extra = len(FUNCTION_WORDS) + len(POLYSEMOUS)
    assert len(vocab) == 4 + len(BERT_TOKENS) + 13 * words_per_category + extra
    assert len(corpus.category_of) == 13 * words_per_category
    if words_per_category > 16:
        assert "animal17" in vocab and "foodverb20" in vocab


def test_vocabulary_puts_bert_tokens_first_then_words_by_count(corpus: PlantedCorpus) -> None:
    vocab, counts = corpus.vocabulary(), corpus.counts()
    assert vocab.tokens[4:7] == BERT_TOKENS
    assert [vocab.id_of(t) for t in BERT_TOKENS] == [4, 5, 6]
    words = vocab.tokens[7:]
    assert list(words) == sorted(counts, key=lambda t: (-counts[t], t))
    rare = min(counts.values())
    assert len(corpus.vocabulary(min_count=rare + 1)) < len(vocab)


def test_category_words_extend_the_lists_with_generated_names() -> None:
    assert category_words("animals", 3) == ("dog", "hound", "cat")
    assert category_words("sport_verbs", 18)[-2:] == ("sportverb17", "sportverb18")
    every = [w for c in CATEGORIES for w in category_words(c, 600)]
    assert len(set(every)) == len(every)  # no word in two categories
    with pytest.raises(ConfigError, match="category must be one of"):
        category_words("colours", 3)


def test_encode_sentences_and_language_vocabulary() -> None:
    vocab = language_vocabulary([["b", "a", "b"]])
    assert vocab.tokens[4:] == (*BERT_TOKENS, "b", "a")
    assert encode_sentences([["a", "b"], ["z"]], vocab) == [[8, 7], [UNK_ID]]
    with pytest.raises(ValueError, match="BERT tokens"):
        language_vocabulary([["[MASK]"]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"documents": 0}, "documents must be an integer >= 1"),
        ({"documents": 2.5}, "documents must be an integer >= 1"),
        ({"words_per_category": 1}, "words_per_category must be an integer >= 2"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"polysemous_fraction": 1.5}, r"polysemous_fraction must be in \[0, 1\]"),
        ({"polysemous_fraction": float("nan")}, r"polysemous_fraction must be in \[0, 1\]"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        planted_corpus(**kwargs)


# --------------------------------------------------------------------------------------------
# the text-file loader
# --------------------------------------------------------------------------------------------


def write(tmp_path: Path, data: bytes, name: str = "book.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


BOOK = (
    "\ufeffThe Cat sat. The cat didn't eat!\n"
    "Was the cat hungry? The dog, the cat and the bird\n"
    "\n"
    "slept the night\n"
).encode()


def test_plain_text_is_lowercased_split_into_words_and_sentences(tmp_path: Path) -> None:
    corpus = read_text_corpus(write(tmp_path, BOOK), min_count=1)
    assert corpus.tokens[:7] == ["the", "cat", "sat", "the", "cat", "didn't", "eat"]
    assert corpus.sentences() == [
        ["the", "cat", "sat"],
        ["the", "cat", "didn't", "eat"],
        ["was", "the", "cat", "hungry"],
        ["the", "dog", "the", "cat", "and", "the", "bird"],
        ["slept", "the", "night"],
    ]
    assert corpus.sentences(max_length=3)[1:3] == [["the", "cat", "didn't"], ["eat"]]
    assert corpus.vocabulary.tokens[4:9] == (*BERT_TOKENS, "the", "cat")
    assert len(corpus) == 21 and corpus.counts()["the"] == 7


def test_rare_words_become_unk_and_max_tokens_cuts(tmp_path: Path) -> None:
    corpus = read_text_corpus(write(tmp_path, BOOK), min_count=2)
    assert set(corpus.tokens) == {"the", "cat", "<unk>"}
    assert corpus.vocabulary.tokens[4:] == (*BERT_TOKENS, "the", "cat")
    assert encode_sentences(corpus.sentences()[:1], corpus.vocabulary) == [[7, 8, UNK_ID]]
    short = read_text_corpus(write(tmp_path, BOOK), min_count=1, max_tokens=5)
    assert short.tokens == ["the", "cat", "sat", "the", "cat"]
    assert short.sentences() == [["the", "cat", "sat"], ["the", "cat"]]


def test_text_without_sentence_marks_becomes_chunks(tmp_path: Path) -> None:
    corpus = read_text_corpus(write(tmp_path, b" ".join([b"a b c"] * 50)), min_count=1)
    chunks = corpus.sentences(max_length=64)
    assert [len(c) for c in chunks] == [64, 64, 22]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty: no words"),
        (b" .,;! \n\n ?", "empty: no words"),
        (b"some words\x00\x01\x02", r"binary data \(a NUL byte\) at byte offset 10"),
        (b"caf\xe9 au lait", "not UTF-8: byte 0xE9 at byte offset 3"),
        (b"every word here once", "no word occurs min_count=5 times"),
    ],
)
def test_bad_files_are_refused_with_the_file_named(tmp_path: Path, data: bytes, match) -> None:
    path = write(tmp_path, data)
    with pytest.raises(DataFormatError, match=match) as info:
        read_text_corpus(path)
    assert str(path) in str(info.value)


def test_missing_or_too_large_files_and_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not found"):
        read_text_corpus(tmp_path / "missing.txt")
    with pytest.raises(DataFormatError, match="too large"):
        read_text_corpus(write(tmp_path, BOOK), max_bytes=10)
    with pytest.raises(ConfigError, match="min_count must be an integer >= 1"):
        read_text_corpus(write(tmp_path, BOOK), min_count=0)
    with pytest.raises(ConfigError, match="max_tokens must be None or an integer >= 1"):
        read_text_corpus(write(tmp_path, BOOK), max_tokens=0)
    with pytest.raises(ConfigError, match="max_length must be an integer >= 1"):
        read_text_corpus(write(tmp_path, BOOK), min_count=1).sentences(max_length=0)
