"""Tests for deepnotes.data.parallel: the tab-separated parallel text loader (on tiny files in
the Tatoeba / Anki export format), the tokeniser, the vocabulary and the padded batches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.core.errors import DataFormatError
from deepnotes.data.parallel import (
    EOS_ID,
    PAD_ID,
    SOS_ID,
    UNK_ID,
    Vocabulary,
    load_parallel_corpus,
    make_batch,
    read_parallel_text,
    tokenize,
)

ANKI = (
    "Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #1158250 (Wittydev)\n"
    "Hi.\tSalut !\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #509819 (Aiji)\n"
    "I don't know.\tJe ne sais pas.\tCC-BY 2.0 (France) Attribution: tatoeba.org #349064\n"
)


def write(tmp_path: Path, data: bytes, name: str = "pairs.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@contextmanager
def refused(path: Path, *phrases: str) -> Iterator[None]:
    """Expect a DataFormatError whose message names ``path`` and contains every phrase."""
    with pytest.raises(DataFormatError) as info:
        yield
    message = str(info.value)
    assert str(path) in message, message
    for phrase in phrases:
        assert phrase in message, message


# --------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------


def test_reads_anki_lines_and_ignores_the_attribution_column(tmp_path):
    path = write(tmp_path, ANKI.encode())
    assert read_parallel_text(path) == [
        ("Go.", "Va !"),
        ("Hi.", "Salut !"),
        ("I don't know.", "Je ne sais pas."),
    ]


def test_two_column_tatoeba_lines(tmp_path):
    path = write(tmp_path, b"Hello\tBonjour\nThanks\tMerci")  # no final newline
    assert read_parallel_text(path) == [("Hello", "Bonjour"), ("Thanks", "Merci")]


def test_windows_line_endings_bom_and_blank_lines(tmp_path):
    data = "\ufeffGo.\tVa !\r\n\r\nHi.\tSalut !\r\n".encode()
    assert data.startswith(b"\xef\xbb\xbf")
    path = write(tmp_path, data)
    assert read_parallel_text(path) == [("Go.", "Va !"), ("Hi.", "Salut !")]


def test_non_ascii_text_is_kept(tmp_path):
    path = write(tmp_path, "Où est-il ?\tWo ist er?\n".encode())
    assert read_parallel_text(path) == [("Où est-il ?", "Wo ist er?")]


def test_non_utf8_byte_is_refused_with_its_offset_and_line(tmp_path):
    data = b"Go.\tVa !\nCaf\xe9\tCafe\n"
    path = write(tmp_path, data)
    offset = data.index(b"\xe9")
    assert offset == 12
    with refused(path, "not UTF-8", "0xE9", "byte offset 12", "line 2"):
        read_parallel_text(path)


def test_binary_file_is_refused(tmp_path):
    path = write(tmp_path, b"Go.\tVa !\n\x00\x01\x02\x03")
    with refused(path, "binary", "byte offset 9", "line 2"):
        read_parallel_text(path)


@pytest.mark.parametrize("data", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file_is_refused(tmp_path, data):
    path = write(tmp_path, data)
    with refused(path, "empty"):
        read_parallel_text(path)


def test_line_without_tab_names_the_line(tmp_path):
    path = write(tmp_path, b"Go.\tVa !\r\n\r\nHi. Salut !\r\n")
    with refused(path, "line 3", "no tab", "Hi. Salut !"):
        read_parallel_text(path)


@pytest.mark.parametrize(
    ("line", "side"), [("\tVa !", "empty source"), ("Go.\t  ", "empty target")]
)
def test_empty_side_names_the_line(tmp_path, line, side):
    path = write(tmp_path, f"Hi.\tSalut !\n{line}\n".encode())
    with refused(path, "line 2", side):
        read_parallel_text(path)


def test_size_limit_is_checked_before_reading(tmp_path):
    path = write(tmp_path, ANKI.encode())
    with refused(path, "too large", str(len(ANKI.encode()))):
        read_parallel_text(path, max_bytes=10)
    assert len(read_parallel_text(path, max_bytes=len(ANKI.encode()))) == 3


def test_missing_file(tmp_path):
    path = tmp_path / "nope.txt"
    with refused(path, "not found"):
        read_parallel_text(path)


def test_corpus_tokenises_builds_vocabularies_and_batches(tmp_path):
    path = write(tmp_path, ANKI.encode())
    corpus = load_parallel_corpus(path)
    assert corpus.pairs[2] == (("i", "don't", "know", "."), ("je", "ne", "sais", "pas", "."))
    assert "don't" in corpus.source_vocabulary and "salut" in corpus.target_vocabulary
    batch = corpus.batch()
    assert batch.src.shape == (3, 4) and batch.src_lengths.tolist() == [2, 2, 4]
    assert corpus.target_vocabulary.decode(batch.tgt_out[2]) == ["je", "ne", "sais", "pas", "."]
    reverse = load_parallel_corpus(path, reverse=True)
    assert reverse.pairs[0] == (("va", "!"), ("go", "."))


def test_corpus_min_count_maps_rare_tokens_to_unk(tmp_path):
    path = write(tmp_path, ANKI.encode())
    corpus = load_parallel_corpus(path, min_count=2)
    assert corpus.source_vocabulary.tokens[4:] == (".",)  # only "." occurs twice
    assert corpus.batch([0]).src.tolist() == [[UNK_ID, 4]]


# --------------------------------------------------------------------------------------------
# tokens and vocabulary
# --------------------------------------------------------------------------------------------


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Don't go, Tom!") == ["don't", "go", ",", "tom", "!"]
    assert tokenize("  Où est-il ?") == ["où", "est", "-", "il", "?"]
    assert tokenize("") == []


def test_vocabulary_ids_and_ordering():
    vocab = Vocabulary.build([["b", "a", "b"], ["c", "a", "b"]])
    assert vocab.tokens == ("<pad>", "<sos>", "<eos>", "<unk>", "b", "a", "c")
    assert (PAD_ID, SOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    assert vocab.encode(["a", "zzz"], add_sos=True, add_eos=True) == [SOS_ID, 5, UNK_ID, EOS_ID]
    assert vocab.decode([SOS_ID, 5, UNK_ID, EOS_ID, 4, PAD_ID]) == ["a", "<unk>"]
    assert vocab.decode([1, 5, 2], strip_special=False) == ["<sos>", "a", "<eos>"]
    assert Vocabulary.build([["b", "a", "b"]], min_count=2).tokens[4:] == ("b",)
    assert Vocabulary.build([["b", "a", "b"]], max_size=1).tokens[4:] == ("b",)


def test_vocabulary_refuses_bad_input():
    with pytest.raises(ValueError, match="special"):
        Vocabulary(["<pad>"])
    with pytest.raises(ValueError, match="unique"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build([["a"]], min_count=0)
    with pytest.raises(ValueError, match=r"0\.\.4"):
        Vocabulary(["a"]).decode([5])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.lists(st.text("ab<>é,", min_size=1, max_size=4), max_size=6), min_size=1, max_size=4
    )
)
def test_vocabulary_round_trip(sequences):
    sequences = [
        [t for t in seq if t not in ("<pad>", "<sos>", "<eos>", "<unk>")] for seq in sequences
    ]
    vocab = Vocabulary.build(sequences)
    for seq in sequences:
        ids = vocab.encode(seq, add_sos=True, add_eos=True)
        assert vocab.decode(ids) == seq
        assert vocab.decode(torch.tensor(ids)) == seq


def test_make_batch_layout_and_masks():
    batch = make_batch([[4, 5, 6], [7]], [[8], [9, 10]])
    assert batch.src.tolist() == [[4, 5, 6], [7, 0, 0]]
    assert batch.tgt_in.tolist() == [[1, 8, 0], [1, 9, 10]]
    assert batch.tgt_out.tolist() == [[8, 2, 0], [9, 10, 2]]
    assert batch.src_mask.tolist() == [[True, True, True], [True, False, False]]
    assert batch.tgt_mask.tolist() == [[True, True, False], [True, True, True]]
    assert torch.equal(batch.src_mask, batch.src != PAD_ID)
    one = batch.select([1])
    assert one.src.tolist() == [[7]] and one.tgt_out.tolist() == [[9, 10, 2]]
    with pytest.raises(ValueError, match="as many targets"):
        make_batch([[4]], [])
    with pytest.raises(ValueError, match="non-empty"):
        make_batch([[]], [[4]])
