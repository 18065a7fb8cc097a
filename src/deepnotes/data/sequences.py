"""Procedural sequence tasks: the adding problem, copy / reverse / sort, and date translation.

Every generator is deterministic given a seed (an ``int``) or a ``torch.Generator``; none reads
the global random state.

**The adding problem** (Hochreiter & Schmidhuber, 1997, "Long short-term memory", experiment 4;
the protocol here is that of Le, Jaitly & Hinton, 2015, "A simple way to initialize recurrent
networks of rectified linear units", section 4.1). Each input is a sequence of ``T`` pairs
``x_t = (v_t, m_t)``: a value ``v_t ~ U[0, 1]`` and a marker ``m_t`` that is 1 at exactly two
steps, one drawn uniformly in the first half ``[0, T // 2)`` and one in the second half
``[T // 2, T)``, and 0 elsewhere. The target is :math:`y = \\sum_t v_t m_t`, the sum of the two
marked values. A model that ignores its input and predicts :math:`E[y] = 1` has mean squared
error :math:`Var(v_a + v_b) = 2 / 12 \\approx 0.167`, the baseline a recurrent model must beat.
Deviation: Hochreiter & Schmidhuber draw values in ``[-1, 1]`` and put the first marker among
the first ten steps; we follow Le et al., as the issue's anchor (pinned by the tests of the
marker positions and of the 0.167 baseline).

**Copy, reverse, sort** (the annotated transformer's copy task; minGPT's sort): a source of
``L`` symbols drawn uniformly from ``num_symbols`` symbols, ``L`` uniform in
``[min_length, max_length]``, and the target the same symbols copied, reversed, or sorted in
ascending order. Symbols are tokens of a :class:`~deepnotes.data.parallel.Vocabulary`:

* id 0 ``<pad>``, 1 ``<sos>``, 2 ``<eos>``, 3 ``<unk>`` (never produced here);
* symbol ``k`` (``0 <= k < num_symbols``) is the token ``str(k)`` at id ``4 + k``, so sorting
  ids sorts symbols.

Batches are :class:`~deepnotes.data.parallel.TokenBatch`: ``src`` (B, S) holds the symbols only
(no special token; ``src_lengths`` gives each ``L``), ``tgt_in = <sos> y`` and ``tgt_out = y <eos>``
(B, L_max + 1), and the padding masks are ``True`` at padding.

**Date translation** (a classic seq2seq exercise; the notes' translation example made
checkable): a date written in one of :data:`DATE_FORMATS` (``"wednesday 9 may 2018"``,
``"09.05.18"``, ``"may 9, 2018"``, ``"2018/5/9"``, ...) is to be translated into one of
:data:`TARGET_FORMATS`: ISO ``"2018-05-09"`` or, for the question "can one encoder serve two
target languages", the day-first ``"09/05/2018"``. Characters are the tokens (a
:class:`~deepnotes.data.parallel.Vocabulary` of characters, :func:`date_vocabulary`). Every
example records, for each field (year, month, day), its character span in the source and in each
target (the span of an ordinal day ``"9th"`` includes its suffix; a two-digit year's span is its
two digits), so attention alignment can be measured (:func:`alignment_mask`). :func:`date_splits`
cuts the dates themselves into train / validation / test, so no date appears in two splits.
Two-digit years (``"18"``) are read inside the corpus's range, which must therefore span fewer
than 100 years (default 1950-01-01 .. 2049-12-31).

Notes' section: discussion 6 "Recurrent Neural Network" (problem types, the LSTM and long time
lags) and discussion 7 "Attention" / "Transformers" (translation, alignment).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from deepnotes.data.parallel import TokenBatch, Vocabulary, make_batch

__all__ = [
    "DATE_FIELDS",
    "DATE_FORMATS",
    "SYMBOL_TASKS",
    "TARGET_FORMATS",
    "AddingBatch",
    "DateExample",
    "DateSplits",
    "adding_problem",
    "alignment_mask",
    "date_batch",
    "date_example",
    "date_splits",
    "date_vocabulary",
    "symbol_task",
    "symbol_vocabulary",
]

Seed = int | torch.Generator


def _generator(seed: Seed) -> torch.Generator:
    """A torch.Generator: ``seed`` itself, or a new CPU generator seeded with it."""
    if isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator().manual_seed(seed)


def _check_positive(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------
# the adding problem
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddingBatch:
    """A batch of the adding problem.

    Attributes:
        inputs: (B, T, 2): channel 0 the values ``v_t ~ U[0, 1]``, channel 1 the markers.
        targets: (B,) the sum of the two marked values.
        positions: (B, 2) the marked steps (first half, second half).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    positions: torch.Tensor


def adding_problem(
    batch_size: int, length: int, *, seed: Seed = 0, dtype: torch.dtype = torch.float32
) -> AddingBatch:
    """Draw a batch of the adding problem (Le et al., 2015 protocol; see the module docstring).

    Arguments:
        batch_size: B, at least 1.
        length: T, at least 2 (one marker per half).
        seed: an int or a ``torch.Generator`` (CPU), which is advanced.
        dtype: floating dtype of the inputs and targets.

    Example:
        >>> batch = adding_problem(4, 50, seed=0)
        >>> batch.inputs.shape, batch.targets.shape
        (torch.Size([4, 50, 2]), torch.Size([4]))
    """
    _check_positive("batch_size", batch_size)
    _check_positive("length", length, 2)
    gen = _generator(seed)
    half = length // 2
    values = torch.rand(batch_size, length, generator=gen, dtype=torch.float64)  # (B, T)
    first = torch.randint(0, half, (batch_size,), generator=gen)  # (B,) in [0, T//2)
    second = torch.randint(half, length, (batch_size,), generator=gen)  # (B,) in [T//2, T)
    positions = torch.stack([first, second], dim=1)  # (B, 2)
    markers = torch.zeros(batch_size, length, dtype=torch.float64)  # (B, T)
    markers.scatter_(1, positions, 1.0)
    targets = (values * markers).sum(dim=1)  # (B,)  y = sum_t v_t m_t
    inputs = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    return AddingBatch(inputs.to(dtype), targets.to(dtype), positions)


# --------------------------------------------------------------------------------------------
# copy / reverse / sort
# --------------------------------------------------------------------------------------------

SYMBOL_TASKS = ("copy", "reverse", "sort")
"""The symbol tasks :func:`symbol_task` generates."""


def symbol_vocabulary(num_symbols: int) -> Vocabulary:
    """The symbol tasks' vocabulary: tokens ``"0" .. str(num_symbols - 1)`` at ids 4, 5, ..."""
    _check_positive("num_symbols", num_symbols)
    return Vocabulary(str(k) for k in range(num_symbols))


def symbol_task(
    task: str,
    batch_size: int,
    *,
    num_symbols: int = 10,
    min_length: int = 1,
    max_length: int = 10,
    seed: Seed = 0,
) -> TokenBatch:
    """Draw a batch of the copy, reverse or sort task (token ids: see the module docstring).

    Arguments:
        task: ``"copy"``, ``"reverse"`` or ``"sort"``.
        batch_size: B, at least 1.
        num_symbols: how many distinct symbols (ids ``4 .. 3 + num_symbols``).
        min_length, max_length: the length ``L`` of each source, uniform in this range.
        seed: an int or a ``torch.Generator`` (CPU), which is advanced.

    Example:
        >>> batch = symbol_task("sort", 2, num_symbols=5, max_length=4, seed=0)
        >>> batch.src.shape[0], batch.tgt_out.shape[1] <= 5
        (2, True)
    """
    if task not in SYMBOL_TASKS:
        raise ValueError(f"task must be one of {', '.join(SYMBOL_TASKS)}; got {task!r}")
    _check_positive("batch_size", batch_size)
    _check_positive("num_symbols", num_symbols)
    _check_positive("min_length", min_length)
    _check_positive("max_length", max_length)
    if max_length < min_length:
        raise ValueError(f"max_length must be >= min_length={min_length}, got {max_length}")
    gen = _generator(seed)
    lengths = torch.randint(min_length, max_length + 1, (batch_size,), generator=gen)  # (B,)
    symbols = 4 + torch.randint(0, num_symbols, (batch_size, max_length), generator=gen)  # (B, L)
    sources = [symbols[i, : int(n)].tolist() for i, n in enumerate(lengths)]
    if task == "copy":
        targets = sources
    elif task == "reverse":
        targets = [src[::-1] for src in sources]
    else:
        targets = [sorted(src) for src in sources]
    return make_batch(sources, targets)


# --------------------------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------------------------

DATE_FIELDS = ("year", "month", "day")
"""The fields of a date whose source and target spans are recorded."""

# spelled out, not strftime("%B"), which follows the locale
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


# placeholder -> (field it writes, how it writes it)
_RENDER = {
    "d": ("day", lambda d: str(d.day)),
    "dd": ("day", lambda d: f"{d.day:02d}"),
    "dth": ("day", lambda d: _ordinal(d.day)),
    "m": ("month", lambda d: str(d.month)),
    "mm": ("month", lambda d: f"{d.month:02d}"),
    "month": ("month", lambda d: _MONTHS[d.month - 1]),
    "Month": ("month", lambda d: _MONTHS[d.month - 1].capitalize()),
    "MONTH": ("month", lambda d: _MONTHS[d.month - 1].upper()),
    "mon": ("month", lambda d: _MONTHS[d.month - 1][:3]),
    "Mon": ("month", lambda d: _MONTHS[d.month - 1][:3].capitalize()),
    "yyyy": ("year", lambda d: f"{d.year:04d}"),
    "yy": ("year", lambda d: f"{d.year % 100:02d}"),
    "weekday": ("weekday", lambda d: _WEEKDAYS[d.weekday()]),
    "Weekday": ("weekday", lambda d: _WEEKDAYS[d.weekday()].capitalize()),
    "Wkd": ("weekday", lambda d: _WEEKDAYS[d.weekday()][:3].capitalize()),
}

DATE_FORMATS: Mapping[str, str] = {
    "weekday d month yyyy": "{weekday} {d} {month} {yyyy}",  # wednesday 9 may 2018
    "d Month yyyy": "{d} {Month} {yyyy}",  # 9 May 2018
    "dd.mm.yy": "{dd}.{mm}.{yy}",  # 09.05.18
    "month d, yyyy": "{month} {d}, {yyyy}",  # may 9, 2018
    "yyyy/m/d": "{yyyy}/{m}/{d}",  # 2018/5/9
    "Wkd, d Mon yyyy": "{Wkd}, {d} {Mon} {yyyy}",  # Wed, 9 May 2018
    "dth of month yyyy": "{dth} of {month} {yyyy}",  # 9th of may 2018
    "MONTH d yyyy": "{MONTH} {d} {yyyy}",  # MAY 9 2018
    "d-mon-yyyy": "{d}-{mon}-{yyyy}",  # 9-may-2018
    "dd mon yy": "{dd} {mon} {yy}",  # 09 may 18
    "yyyymmdd": "{yyyy}{mm}{dd}",  # 20180509
    "Weekday, Month d, yyyy": "{Weekday}, {Month} {d}, {yyyy}",  # Wednesday, May 9, 2018
    "d.m.yyyy": "{d}.{m}.{yyyy}",  # 9.5.2018
}
"""Source surface forms: name -> template (placeholders in braces, see the comments' examples).
Day-first or named-month only, so no numeric form is ambiguous."""

TARGET_FORMATS: Mapping[str, str] = {
    "iso": "{yyyy}-{mm}-{dd}",  # 2018-05-09
    "dmy": "{dd}/{mm}/{yyyy}",  # 09/05/2018
}
"""Target formats: ISO 8601 and a day-first second "language"."""

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _render(template: str, date: dt.date) -> tuple[str, dict[str, tuple[int, int]]]:
    """``template`` filled with ``date``, and the [start, end) character span of every field."""
    text, spans, last = "", {}, 0
    for match in _PLACEHOLDER.finditer(template):
        text += template[last : match.start()]
        field, write = _RENDER[match.group(1)]
        piece = write(date)
        spans[field] = (len(text), len(text) + len(piece))
        text += piece
        last = match.end()
    return text + template[last:], spans


@dataclass(frozen=True)
class DateExample:
    """One date in one source form with all its targets.

    Attributes:
        date: the date.
        format: the name of the source form (a key of :data:`DATE_FORMATS`).
        source: the source text, e.g. ``"wednesday 9 may 2018"``.
        targets: target format name -> text, e.g. ``{"iso": "2018-05-09", "dmy": "09/05/2018"}``.
        source_spans: field -> [start, end) character span in ``source`` (year, month, day, and
            weekday where the form writes it).
        target_spans: target format name -> field -> [start, end) span in that target.
    """

    date: dt.date
    format: str
    source: str
    targets: Mapping[str, str]
    source_spans: Mapping[str, tuple[int, int]]
    target_spans: Mapping[str, Mapping[str, tuple[int, int]]]


def date_example(date: dt.date, format: str) -> DateExample:
    """The example of ``date`` written in the source form ``format``.

    Example:
        >>> ex = date_example(dt.date(2018, 5, 9), "dd.mm.yy")
        >>> ex.source, ex.targets["iso"], ex.source_spans["year"]
        ('09.05.18', '2018-05-09', (6, 8))
    """
    if format not in DATE_FORMATS:
        raise ValueError(
            f"format must be one of {', '.join(map(repr, DATE_FORMATS))}; got {format!r}"
        )
    source, source_spans = _render(DATE_FORMATS[format], date)
    rendered = {name: _render(template, date) for name, template in TARGET_FORMATS.items()}
    return DateExample(
        date=date,
        format=format,
        source=source,
        targets={name: text for name, (text, _) in rendered.items()},
        source_spans=source_spans,
        target_spans={name: spans for name, (_, spans) in rendered.items()},
    )


def date_vocabulary() -> Vocabulary:
    """The character vocabulary of every source and target form (fixed: the same for every split).

    Built from every form of every day of the leap year 2000, which writes every month, weekday,
    digit and separator; characters in id order (sorted), after the four special tokens.
    """
    chars: set[str] = set()
    day, end = dt.date(2000, 1, 1), dt.date(2000, 12, 31)
    while day <= end:
        for template in (*DATE_FORMATS.values(), *TARGET_FORMATS.values()):
            chars.update(_render(template, day)[0])
        day += dt.timedelta(days=1)
    return Vocabulary(sorted(chars))


@dataclass(frozen=True)
class DateSplits:
    """Train / validation / test date examples over disjoint sets of dates, and the vocabulary."""

    train: tuple[DateExample, ...]
    validation: tuple[DateExample, ...]
    test: tuple[DateExample, ...]
    vocabulary: Vocabulary


def date_splits(
    num_dates: tuple[int, int, int] = (8000, 1000, 1000),
    *,
    formats_per_date: int = 1,
    formats: Sequence[str] | None = None,
    start: dt.date = dt.date(1950, 1, 1),
    end: dt.date = dt.date(2049, 12, 31),
    seed: Seed = 0,
) -> DateSplits:
    """Draw distinct dates, cut them into train / validation / test, and write each in
    ``formats_per_date`` distinct source forms drawn at random.

    Arguments:
        num_dates: how many distinct dates in (train, validation, test); their sum must not
            exceed the number of days from ``start`` to ``end``.
        formats_per_date: source forms per date (each split has ``num_dates[i] * k`` examples).
        formats: the source forms to draw from (default: all of :data:`DATE_FORMATS`).
        start, end: the range of dates (inclusive); years 1000-9999, and fewer than 100 years
            apart when a form writes two-digit years (so ``"18"`` names one year).
        seed: an int or a ``torch.Generator`` (CPU).

    Example:
        >>> splits = date_splits((100, 20, 20), seed=0)
        >>> len(splits.train), splits.train[0].targets["iso"][:2] in ("19", "20")
        (100, True)
    """
    formats = tuple(DATE_FORMATS) if formats is None else tuple(formats)
    if not formats:
        raise ValueError("formats must name at least one source form, got none")
    for name in formats:
        if name not in DATE_FORMATS:
            raise ValueError(
                f"formats must be among {', '.join(map(repr, DATE_FORMATS))}; got {name!r}"
            )
    if len(set(formats)) != len(formats):
        raise ValueError(f"formats must be distinct, got {list(formats)}")
    if len(num_dates) != 3:
        raise ValueError(f"num_dates must be (train, validation, test), got {num_dates!r}")
    for name, n in zip(("train", "validation", "test"), num_dates, strict=True):
        _check_positive(f"num_dates ({name})", n, 0)
    _check_positive("formats_per_date", formats_per_date)
    if formats_per_date > len(formats):
        raise ValueError(
            f"formats_per_date must be at most the {len(formats)} forms, got {formats_per_date}"
        )
    if not (start.year >= 1000 and end.year <= 9999 and start <= end):
        raise ValueError(f"expected 1000-01-01 <= start <= end <= 9999-12-31, got {start}, {end}")
    if any("{yy}" in DATE_FORMATS[f] for f in formats) and end.year - start.year >= 100:
        raise ValueError(
            f"two-digit years need a range of fewer than 100 years, got {start.year}-{end.year}"
        )
    days = (end - start).days + 1
    if sum(num_dates) > days:
        raise ValueError(
            f"num_dates asks for {sum(num_dates)} distinct dates, the range {start}..{end} holds "
            f"{days}"
        )
    gen = _generator(seed)
    offsets = torch.randperm(days, generator=gen)[: sum(num_dates)].tolist()
    parts, cut = [], 0
    for n in num_dates:
        examples = []
        for offset in offsets[cut : cut + n]:
            date = start + dt.timedelta(days=offset)
            chosen = torch.randperm(len(formats), generator=gen)[:formats_per_date].tolist()
            examples.extend(date_example(date, formats[i]) for i in chosen)
        parts.append(tuple(examples))
        cut += n
    return DateSplits(*parts, vocabulary=date_vocabulary())


def _check_target(target: str) -> None:
    if target not in TARGET_FORMATS:
        raise ValueError(
            f"target must be one of {', '.join(map(repr, TARGET_FORMATS))}; got {target!r}"
        )


def date_batch(
    examples: Sequence[DateExample], vocabulary: Vocabulary, target: str = "iso"
) -> TokenBatch:
    """Encode date examples, character by character, as a :class:`TokenBatch`.

    ``src[b, i]`` is character ``i`` of the source (no special token before it), so a source span
    indexes ``src`` directly; ``tgt_out[b, j]`` is character ``j`` of the target.

    Example:
        >>> splits = date_splits((10, 2, 2), seed=0)
        >>> batch = date_batch(splits.train, splits.vocabulary, "iso")
        >>> batch.tgt_out.shape
        torch.Size([10, 11])
    """
    _check_target(target)
    return make_batch(
        [vocabulary.encode(ex.source) for ex in examples],
        [vocabulary.encode(ex.targets[target]) for ex in examples],
    )


def alignment_mask(
    examples: Sequence[DateExample], target: str = "iso", *, shape: tuple[int, int] | None = None
) -> torch.Tensor:
    """Which source characters each target character should attend to.

    ``mask[b, j, i]`` is ``True`` when target character ``j`` (position ``j`` of ``tgt_out``)
    belongs to a field (year, month, day) and source character ``i`` to the same field's span.
    Rows of separators and ``<eos>`` are all ``False``. The attention mass on the aligned span of
    target position ``j`` is ``(attention * mask).sum(-1)``, read on the rows where
    ``mask.any(-1)``.

    Arguments:
        examples: B date examples.
        target: the target format name.
        shape: ``(T, S)`` of the attention maps (default: the longest target + 1 for ``<eos>``,
            and the longest source, as in :func:`date_batch`).

    Returns:
        A (B, T, S) bool tensor.
    """
    _check_target(target)
    if not examples:
        raise ValueError("expected at least one example, got none")
    if shape is None:
        shape = (
            max(len(ex.targets[target]) for ex in examples) + 1,
            max(len(ex.source) for ex in examples),
        )
    tgt_len, src_len = shape
    mask = torch.zeros(len(examples), tgt_len, src_len, dtype=torch.bool)  # (B, T, S)
    for b, ex in enumerate(examples):
        if len(ex.targets[target]) >= tgt_len or len(ex.source) > src_len:
            raise ValueError(
                f"shape (T, S) must hold target + <eos> and source, got {shape} for example {b} "
                f"({len(ex.targets[target]) + 1}, {len(ex.source)})"
            )
        for field in DATE_FIELDS:
            t0, t1 = ex.target_spans[target][field]
            s0, s1 = ex.source_spans[field]
            mask[b, t0:t1, s0:s1] = True
    return mask
