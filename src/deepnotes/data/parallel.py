"""Parallel text a user brings (Tatoeba / Anki exports), a word tokeniser, a vocabulary, and
the padded token batches that every sequence-to-sequence model of ``deepnotes.sequence`` reads.

**File format** (what :func:`read_parallel_text` accepts): UTF-8 text, one pair per line,
``source<TAB>target``, as in the Tatoeba "sentence pairs" and the Anki (manythings.org) exports.
Anki's files carry a third column with the attribution (``CC-BY 2.0 (France) Attribution:
tatoeba.org #...``); every column after the second is accepted and ignored. Lines may end in
``\\n`` or ``\\r\\n`` (Windows); a UTF-8 byte-order mark at the start is skipped; blank lines
(only spaces) are skipped. Each side is stripped of surrounding spaces. Refused, with a
:class:`~deepnotes.core.errors.DataFormatError` naming the file:

* a file larger than the size limit (:func:`~deepnotes.data.bounded.max_bytes`, 4 GiB by default),
  checked against the size on disk before anything is read (the bounded-reading rule of
  :mod:`deepnotes.data.bounded`);
* a binary file (a NUL byte) or bytes that are not UTF-8, with the byte offset and line number;
* an empty file (no pair at all);
* a line without a tab, or with an empty source or target, with its line number (1-based).

**Tokens.** :func:`tokenize` lowercases and splits words from punctuation (``"Don't go!"`` ->
``["don't", "go", "!"]``). :class:`Vocabulary` maps tokens to ids with four special tokens at
fixed ids, shared by every vocabulary in ``deepnotes.data`` (the character vocabulary of the date
corpus and the symbol vocabulary of the copy/reverse/sort tasks too):

====  =========  ===================================================
 id    token      role
====  =========  ===================================================
 0     ``<pad>``  padding after the end of a shorter sequence
 1     ``<sos>``  start of sequence: first decoder input
 2     ``<eos>``  end of sequence: last decoder target
 3     ``<unk>``  a token not in the vocabulary
====  =========  ===================================================

**Batches.** :class:`TokenBatch` holds a padded batch of (source, target) id sequences in the form
a seq2seq model reads with teacher forcing: ``src`` (B, S), ``tgt_in = <sos> y`` and
``tgt_out = y <eos>`` (B, T), their lengths, and masks that are ``True`` at real tokens and
``False`` at padding, the one convention of every deepnotes attention module (torch's
``key_padding_mask`` is the opposite: pass it ``~mask``).

Notes' section: discussion 7, "Attention" (translation as the running example).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from deepnotes.core.errors import DataFormatError
from deepnotes.core.text import shorten
from deepnotes.data.bounded import read_file

__all__ = [
    "EOS_ID",
    "PAD_ID",
    "SOS_ID",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "ParallelCorpus",
    "TokenBatch",
    "Vocabulary",
    "load_parallel_corpus",
    "make_batch",
    "read_parallel_text",
    "tokenize",
]

SPECIAL_TOKENS = ("<pad>", "<sos>", "<eos>", "<unk>")
"""The special tokens, at ids 0, 1, 2, 3 in every :class:`Vocabulary`."""
PAD_ID, SOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

_WHAT = "parallel text file (UTF-8, one 'source<TAB>target' pair per line)"
# a word (letters, digits, underscore; inner apostrophes kept: "don't") or one punctuation mark
_TOKEN = re.compile(r"\w+(?:['\u2019]\w+)*|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lowercase ``text`` and split it into words and single punctuation marks.

    A word is a run of letters, digits or underscores, with inner apostrophes kept (``don't``,
    ``l'homme``); every other non-space character is a token of its own.

    Example:
        >>> tokenize("Don't go, Tom!")
        ["don't", 'go', ',', 'tom', '!']
    """
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Tokens <-> ids, with ``<pad> <sos> <eos> <unk>`` at ids 0-3 and the tokens after them.

    Arguments:
        tokens: the ordinary tokens, in id order (ids 4, 5, ...); duplicates and special tokens
            are refused.

    Example:
        >>> vocab = Vocabulary.build([["a", "b", "a"], ["c"]], min_count=1)
        >>> vocab.encode(["a", "z"], add_eos=True)
        [4, 3, 2]
        >>> vocab.decode([1, 4, 5, 2, 0])
        ['a', 'b']
    """

    def __init__(self, tokens: Iterable[str]):
        tokens = list(tokens)
        for token in tokens:
            if not isinstance(token, str) or not token:
                raise TypeError(f"vocabulary tokens must be non-empty strings, got {token!r}")
        clash = sorted(set(tokens) & set(SPECIAL_TOKENS))
        if clash:
            raise ValueError(f"tokens must not include the special tokens, got {clash}")
        if len(set(tokens)) != len(tokens):
            dup = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"tokens must be unique, got {dup!r} more than once")
        self._itos: tuple[str, ...] = (*SPECIAL_TOKENS, *tokens)
        self._stoi = {token: i for i, token in enumerate(self._itos)}

    @classmethod
    def build(
        cls,
        sequences: Iterable[Sequence[str]],
        *,
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """The vocabulary of the tokens seen at least ``min_count`` times in ``sequences``.

        Tokens are ordered by count (most frequent first), ties by the token itself, so the same
        corpus always gives the same ids.

        Arguments:
            sequences: tokenised texts.
            min_count: fewest occurrences a token needs to get an id (rarer ones map to
                ``<unk>``), at least 1.
            max_size: keep at most this many ordinary tokens (the most frequent); ``None``: all.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"max_size must be None or an integer >= 0, got {max_size!r}")
        counts = Counter(t for seq in sequences for t in seq if t not in SPECIAL_TOKENS)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(kept if max_size is None else kept[:max_size])

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._itos == other._itos

    def __hash__(self) -> int:
        return hash(self._itos)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} ids: {shorten(list(self._itos[4:]))})"

    @property
    def tokens(self) -> tuple[str, ...]:
        """Every token in id order, the four special tokens first."""
        return self._itos

    pad_id = PAD_ID
    sos_id = SOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def id_of(self, token: str) -> int:
        """The id of ``token``, or :data:`UNK_ID` when it is not in the vocabulary."""
        return self._stoi.get(token, UNK_ID)

    def token_of(self, index: int) -> str:
        """The token with id ``index``; a ValueError outside ``0..len(self) - 1``."""
        if not 0 <= index < len(self._itos):
            raise ValueError(f"token id must be in 0..{len(self._itos) - 1}, got {index}")
        return self._itos[index]

    def encode(
        self, tokens: Iterable[str], *, add_sos: bool = False, add_eos: bool = False
    ) -> list[int]:
        """Ids of ``tokens`` (``<unk>`` when unknown), framed by ``<sos>``/``<eos>`` if asked."""
        ids = [self._stoi.get(t, UNK_ID) for t in tokens]
        return [SOS_ID] * add_sos + ids + [EOS_ID] * add_eos

    def decode(self, ids: Iterable[int] | torch.Tensor, *, strip_special: bool = True) -> list[str]:
        """Tokens of ``ids``.

        With ``strip_special`` (default), reading stops at the first ``<eos>`` and ``<pad>`` and
        ``<sos>`` are dropped, so ``decode(encode(t, add_sos=True, add_eos=True)) == t`` for
        tokens in the vocabulary; ``<unk>`` is kept. Without it every id is translated.
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out: list[str] = []
        for index in ids:
            index = int(index)
            if strip_special:
                if index == EOS_ID:
                    break
                if index in (PAD_ID, SOS_ID):
                    continue
            out.append(self.token_of(index))
        return out


@dataclass(frozen=True)
class TokenBatch:
    """A padded batch of (source, target) id sequences for teacher-forced seq2seq training.

    Attributes:
        src: (B, S) source ids, padded with ``<pad>`` (0) after each length.
        src_lengths: (B,) number of real source tokens.
        tgt_in: (B, T) decoder inputs ``<sos> y_1 .. y_n``, padded.
        tgt_out: (B, T) decoder targets ``y_1 .. y_n <eos>``, padded (use
            ``ignore_index=PAD_ID`` in the cross-entropy).
        tgt_lengths: (B,) ``n + 1``: the real positions of ``tgt_in`` and ``tgt_out``.
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor
    tgt_lengths: torch.Tensor

    @property
    def src_mask(self) -> torch.Tensor:
        """(B, S) bool, ``True`` at real tokens, ``False`` at padding: the convention of every
        deepnotes attention module (pass ``~mask`` to torch's ``key_padding_mask``)."""
        positions = torch.arange(self.src.shape[1], device=self.src.device)
        return positions[None, :] < self.src_lengths[:, None]  # (B, S)

    @property
    def tgt_mask(self) -> torch.Tensor:
        """(B, T) bool, ``True`` at real tokens of ``tgt_in`` / ``tgt_out``, else ``False``."""
        positions = torch.arange(self.tgt_in.shape[1], device=self.tgt_in.device)
        return positions[None, :] < self.tgt_lengths[:, None]  # (B, T)

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str) -> TokenBatch:
        """The same batch on ``device``."""
        return TokenBatch(*(t.to(device) for t in self._tensors()))

    def select(self, index: torch.Tensor | Sequence[int] | slice) -> TokenBatch:
        """The examples at ``index`` (an index tensor, a list or a slice), padding trimmed."""
        rows = [t[index] for t in self._tensors()]
        if rows[0].shape[0] == 0:
            raise ValueError(f"select needs at least one example, got index {shorten(index)}")
        src_len, tgt_len = int(rows[1].max()), int(rows[4].max())
        src, tgt_in, tgt_out = rows[0][:, :src_len], rows[2][:, :tgt_len], rows[3][:, :tgt_len]
        return TokenBatch(src, rows[1], tgt_in, tgt_out, rows[4])

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.src, self.src_lengths, self.tgt_in, self.tgt_out, self.tgt_lengths)


def _pad(rows: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), PAD_ID, dtype=torch.long)  # (B, width)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
    return out


def make_batch(sources: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> TokenBatch:
    """Pad id sequences into a :class:`TokenBatch`; ``<sos>``/``<eos>`` are added to the targets.

    Arguments:
        sources: B source id sequences (no special tokens needed), each non-empty.
        targets: B target id sequences, without ``<sos>``/``<eos>``.

    Example:
        >>> b = make_batch([[4, 5], [6]], [[7], [8, 9]])
        >>> b.tgt_in.tolist(), b.tgt_out.tolist()
        ([[1, 7, 0], [1, 8, 9]], [[7, 2, 0], [8, 9, 2]])
    """
    if len(sources) != len(targets):
        raise ValueError(
            f"expected as many targets as sources, got {len(sources)} sources and "
            f"{len(targets)} targets"
        )
    if not sources:
        raise ValueError("expected at least one (source, target) pair, got none")
    for i, src in enumerate(sources):
        if len(src) == 0:
            raise ValueError(f"source sequences must be non-empty, got an empty one at index {i}")
    src_lengths = torch.tensor([len(s) for s in sources], dtype=torch.long)  # (B,)
    tgt_lengths = torch.tensor([len(t) + 1 for t in targets], dtype=torch.long)  # (B,)
    width = int(tgt_lengths.max())
    return TokenBatch(
        src=_pad(sources, int(src_lengths.max())),  # (B, S)
        src_lengths=src_lengths,
        tgt_in=_pad([[SOS_ID, *t] for t in targets], width),  # (B, T)
        tgt_out=_pad([[*t, EOS_ID] for t in targets], width),  # (B, T)
        tgt_lengths=tgt_lengths,
    )


# --------------------------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------------------------


def _line_of(data: bytes, offset: int) -> int:
    """1-based line number of byte ``offset``."""
    return data.count(b"\n", 0, offset) + 1


def read_parallel_text(
    path: str | os.PathLike[str], *, max_bytes: int | None = None
) -> list[tuple[str, str]]:
    """Read ``source<TAB>target`` pairs from a UTF-8 file (Tatoeba / Anki export format).

    See the module docstring for what is accepted (extra columns, ``\\r\\n``, a BOM, blank
    lines) and refused. The file's size on disk is checked against the limit before it is read.

    Arguments:
        path: the file.
        max_bytes: largest file accepted, in bytes (default:
            :func:`~deepnotes.data.bounded.max_bytes`, 4 GiB).

    Returns:
        The (source, target) pairs in file order, each side stripped of surrounding spaces.

    Raises:
        DataFormatError: the file is missing, too large, binary, not UTF-8, empty, or a line
            has no tab or an empty side; the message names the file (and the line).

    Example:
        >>> read_parallel_text("fra.txt")[:1]  # doctest: +SKIP
        [('Go.', 'Va !')]
    """
    path = Path(path)
    data = read_file(path, _WHAT, limit=max_bytes)
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(
            f"{path}: binary data (a NUL byte) at byte offset {nul} (line "
            f"{_line_of(data, nul)}); expected a {_WHAT}"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02X} at byte offset {exc.start} (line "
            f"{_line_of(data, exc.start)}) is not valid UTF-8; expected a {_WHAT}"
        ) from None
    text = text.removeprefix("\ufeff")
    pairs: list[tuple[str, str]] = []
    # split on "\n" only: str.splitlines would also split on \x1c, \u2028 and other separators
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise DataFormatError(
                f"{path}: line {number}: no tab; expected 'source<TAB>target', got "
                f"{shorten(repr(line))}"
            )
        source, target = columns[0].strip(), columns[1].strip()
        for side, value in (("source", source), ("target", target)):
            if not value:
                raise DataFormatError(
                    f"{path}: line {number}: empty {side}; expected 'source<TAB>target' with "
                    f"both sides non-empty, got {shorten(repr(line))}"
                )
        pairs.append((source, target))
    if not pairs:
        raise DataFormatError(
            f"{path}: empty: no 'source<TAB>target' line found ({len(data)} bytes); expected a "
            f"{_WHAT}"
        )
    return pairs


@dataclass(frozen=True)
class ParallelCorpus:
    """Tokenised parallel text with one vocabulary per side.

    Attributes:
        pairs: the (source tokens, target tokens) pairs.
        source_vocabulary: built from the source side.
        target_vocabulary: built from the target side.
    """

    pairs: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    source_vocabulary: Vocabulary
    target_vocabulary: Vocabulary

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, indices: Iterable[int] | None = None) -> TokenBatch:
        """The pairs at ``indices`` (default: all) encoded and padded as a :class:`TokenBatch`."""
        chosen = self.pairs if indices is None else [self.pairs[i] for i in indices]
        return make_batch(
            [self.source_vocabulary.encode(src) for src, _ in chosen],
            [self.target_vocabulary.encode(tgt) for _, tgt in chosen],
        )


def load_parallel_corpus(
    path: str | os.PathLike[str],
    *,
    min_count: int = 1,
    max_bytes: int | None = None,
    reverse: bool = False,
) -> ParallelCorpus:
    """Read a parallel text file, tokenise both sides and build their vocabularies.

    Arguments:
        path: the file (see :func:`read_parallel_text`).
        min_count: fewest occurrences a token needs to get an id (see :meth:`Vocabulary.build`).
        max_bytes: largest file accepted, in bytes.
        reverse: translate target -> source instead (swap the columns).

    Raises:
        DataFormatError: as :func:`read_parallel_text`.

    Example:
        >>> corpus = load_parallel_corpus("fra.txt", min_count=2)  # doctest: +SKIP
        >>> batch = corpus.batch(range(32))  # doctest: +SKIP
    """
    raw = read_parallel_text(path, max_bytes=max_bytes)
    # every side is non-empty after stripping, so it holds at least one token
    pairs = [(tuple(tokenize(source)), tuple(tokenize(target))) for source, target in raw]
    if reverse:
        pairs = [(tgt, src) for src, tgt in pairs]
    return ParallelCorpus(
        pairs=tuple(pairs),
        source_vocabulary=Vocabulary.build((s for s, _ in pairs), min_count=min_count),
        target_vocabulary=Vocabulary.build((t for _, t in pairs), min_count=min_count),
    )
