"""Tests for deepnotes.data.sequences: the adding problem, copy/reverse/sort and the date corpus."""

from __future__ import annotations

import datetime as dt
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepnotes.data.parallel import EOS_ID, PAD_ID, SOS_ID
from deepnotes.data.sequences import (
    DATE_FIELDS,
    DATE_FORMATS,
    TARGET_FORMATS,
    adding_problem,
    alignment_mask,
    date_batch,
    date_example,
    date_splits,
    date_vocabulary,
    symbol_task,
    symbol_vocabulary,
)

# --------------------------------------------------------------------------------------------
# the adding problem
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [2, 7, 50])
def test_adding_markers_one_per_half_and_target_is_marked_sum(length):
    batch = adding_problem(256, length, seed=1, dtype=torch.float64)
    values, markers = batch.inputs[..., 0], batch.inputs[..., 1]
    assert batch.inputs.shape == (256, length, 2) and batch.targets.shape == (256,)
    assert ((values >= 0) & (values <= 1)).all()
    assert torch.equal(markers.sum(1), torch.full((256,), 2.0, dtype=torch.float64))
    half = length // 2
    assert torch.equal(markers[:, :half].sum(1), torch.ones(256, dtype=torch.float64))
    first, second = batch.positions[:, 0], batch.positions[:, 1]
    assert (first < half).all() and (second >= half).all()
    rows = torch.arange(256)
    expected = values[rows, first] + values[rows, second]
    torch.testing.assert_close(batch.targets, expected, rtol=0, atol=1e-15)


def test_adding_mean_predictor_mse_is_one_sixth():
    """Predicting E[y] = 1 gives MSE Var(U1 + U2) = 1/6; Var((y - 1)^2) = 1/15 - 1/36 = 7/180,
    so the Monte Carlo mean over n draws has standard error sqrt(7/180/n); we allow 5 of them."""
    n = 200_000
    batch = adding_problem(n, 10, seed=0, dtype=torch.float64)
    mse = float(((batch.targets - 1.0) ** 2).mean())
    se = math.sqrt(7 / 180 / n)
    assert abs(mse - 1 / 6) < 5 * se, (mse, se)
    assert abs(float(batch.targets.mean()) - 1.0) < 5 * math.sqrt(1 / 6 / n)


def test_adding_is_deterministic_given_seed_or_generator():
    a = adding_problem(8, 20, seed=3)
    b = adding_problem(8, 20, seed=torch.Generator().manual_seed(3))
    assert torch.equal(a.inputs, b.inputs) and torch.equal(a.targets, b.targets)
    assert not torch.equal(a.inputs, adding_problem(8, 20, seed=4).inputs)
    gen = torch.Generator().manual_seed(3)
    assert not torch.equal(
        adding_problem(8, 20, seed=gen).inputs, adding_problem(8, 20, seed=gen).inputs
    )


def test_adding_refuses_bad_arguments():
    with pytest.raises(ValueError, match="length must be an integer >= 2"):
        adding_problem(4, 1)
    with pytest.raises(ValueError, match="batch_size"):
        adding_problem(0, 10)
    with pytest.raises(TypeError, match="seed"):
        adding_problem(4, 10, seed=1.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# copy / reverse / sort
# --------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(
    task=st.sampled_from(["copy", "reverse", "sort"]),
    seed=st.integers(0, 2**31),
    num_symbols=st.integers(1, 12),
    min_length=st.integers(1, 6),
    extra=st.integers(0, 6),
)
def test_symbol_tasks_layout(task, seed, num_symbols, min_length, extra):
    max_length = min_length + extra
    batch = symbol_task(
        task, 16, num_symbols=num_symbols, min_length=min_length, max_length=max_length, seed=seed
    )
    vocab = symbol_vocabulary(num_symbols)
    assert len(vocab) == 4 + num_symbols
    lengths = batch.src_lengths
    assert ((lengths >= min_length) & (lengths <= max_length)).all()
    assert torch.equal(batch.tgt_lengths, lengths + 1)
    assert torch.equal(batch.src_mask, batch.src != PAD_ID)
    assert torch.equal(batch.tgt_mask, batch.tgt_out != PAD_ID)
    for i, n in enumerate(lengths.tolist()):
        src = batch.src[i, :n].tolist()
        assert all(4 <= s < 4 + num_symbols for s in src)
        y = {"copy": src, "reverse": src[::-1], "sort": sorted(src)}[task]
        assert batch.tgt_in[i, : n + 1].tolist() == [SOS_ID, *y]
        assert batch.tgt_out[i, : n + 1].tolist() == [*y, EOS_ID]
        assert vocab.decode(batch.tgt_in[i]) == [str(s - 4) for s in y]


def test_symbol_task_is_deterministic_and_refuses_bad_arguments():
    a, b = symbol_task("copy", 8, seed=5), symbol_task("copy", 8, seed=5)
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt_out, b.tgt_out)
    with pytest.raises(ValueError, match="copy, reverse, sort"):
        symbol_task("shuffle", 4)
    with pytest.raises(ValueError, match="max_length must be >= min_length=5"):
        symbol_task("copy", 4, min_length=5, max_length=3)


# --------------------------------------------------------------------------------------------
# dates
# --------------------------------------------------------------------------------------------

MAY_9 = dt.date(2018, 5, 9)  # a Wednesday


@pytest.mark.parametrize(
    ("form", "source", "year", "month", "day"),
    [  # spans checked by hand: the characters of each field in the source
        ("weekday d month yyyy", "wednesday 9 may 2018", (16, 20), (12, 15), (10, 11)),
        ("d Month yyyy", "9 May 2018", (6, 10), (2, 5), (0, 1)),
        ("dd.mm.yy", "09.05.18", (6, 8), (3, 5), (0, 2)),
        ("month d, yyyy", "may 9, 2018", (7, 11), (0, 3), (4, 5)),
        ("yyyy/m/d", "2018/5/9", (0, 4), (5, 6), (7, 8)),
        ("Wkd, d Mon yyyy", "Wed, 9 May 2018", (11, 15), (7, 10), (5, 6)),
        ("dth of month yyyy", "9th of may 2018", (11, 15), (7, 10), (0, 3)),
        ("yyyymmdd", "20180509", (0, 4), (4, 6), (6, 8)),
        ("Weekday, Month d, yyyy", "Wednesday, May 9, 2018", (18, 22), (11, 14), (15, 16)),
    ],
)
def test_date_sources_and_spans_by_hand(form, source, year, month, day):
    ex = date_example(MAY_9, form)
    assert ex.source == source
    assert ex.targets == {"iso": "2018-05-09", "dmy": "09/05/2018"}
    assert ex.source_spans["year"] == year
    assert ex.source_spans["month"] == month
    assert ex.source_spans["day"] == day
    assert ex.target_spans["iso"] == {"year": (0, 4), "month": (5, 7), "day": (8, 10)}
    assert ex.target_spans["dmy"] == {"day": (0, 2), "month": (3, 5), "year": (6, 10)}


def test_date_ordinals_and_padding():
    assert (
        date_example(dt.date(1999, 12, 22), "dth of month yyyy").source == "22nd of december 1999"
    )
    assert date_example(dt.date(2011, 1, 11), "dth of month yyyy").source == "11th of january 2011"
    assert date_example(dt.date(2003, 3, 1), "dd mon yy").source == "01 mar 03"
    assert date_example(dt.date(2003, 3, 1), "MONTH d yyyy").source == "MARCH 1 2003"


@settings(max_examples=60, deadline=None)
@given(
    date=st.dates(dt.date(1950, 1, 1), dt.date(2049, 12, 31)),
    form=st.sampled_from(sorted(DATE_FORMATS)),
)
def test_every_span_reads_its_field(date, form):
    """The source span of each field parses back to the field's value (property test)."""
    ex = date_example(date, form)
    names = ["january", "february", "march", "april", "may", "june", "july", "august",
             "september", "october", "november", "december"]  # fmt: skip
    for field in DATE_FIELDS:
        start, end = ex.source_spans[field]
        text = ex.source[start:end].lower()
        if field == "day":
            assert int(text.rstrip("stndrh")) == date.day
        elif field == "month":
            assert (text.isdigit() and int(text) == date.month) or names[date.month - 1].startswith(
                text
            )
        else:
            assert int(text) == (date.year if len(text) == 4 else date.year % 100)
    for name in TARGET_FORMATS:
        for field in DATE_FIELDS:
            start, end = ex.target_spans[name][field]
            assert int(ex.targets[name][start:end]) == getattr(date, field)
    assert ex.targets["iso"] == date.isoformat()


def test_date_splits_share_no_date_and_are_deterministic():
    splits = date_splits((300, 50, 50), formats_per_date=2, seed=0)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (600, 100, 100)
    dates = [{ex.date for ex in part} for part in (splits.train, splits.validation, splits.test)]
    assert [len(d) for d in dates] == [300, 50, 50]
    assert not (dates[0] & dates[1]) and not (dates[0] & dates[2]) and not (dates[1] & dates[2])
    pairs = [(ex.date, ex.format) for ex in splits.train]
    assert len(set(pairs)) == len(pairs)  # two distinct forms per date
    again = date_splits((300, 50, 50), formats_per_date=2, seed=torch.Generator().manual_seed(0))
    assert again == splits
    assert date_splits((300, 50, 50), formats_per_date=2, seed=1).train != splits.train


def test_date_splits_refuse_bad_arguments():
    with pytest.raises(ValueError, match="fewer than 100 years"):
        date_splits((10, 1, 1), start=dt.date(1900, 1, 1))
    with pytest.raises(ValueError, match="holds 31"):
        date_splits((30, 1, 1), start=dt.date(2000, 1, 1), end=dt.date(2000, 1, 31))
    with pytest.raises(ValueError, match="formats must be among"):
        date_splits((10, 1, 1), formats=["dd/mm/yyyy"])
    with pytest.raises(ValueError, match="formats_per_date"):
        date_splits((10, 1, 1), formats=["yyyymmdd"], formats_per_date=2)
    # without two-digit years, a longer range is fine
    wide = date_splits((5, 1, 1), formats=["yyyymmdd"], start=dt.date(1800, 1, 1))
    assert len(wide.train) == 5


def test_date_vocabulary_covers_every_form_and_round_trips():
    vocab = date_vocabulary()
    splits = date_splits((200, 1, 1), formats_per_date=len(DATE_FORMATS), seed=2)
    for ex in splits.train:
        ids = vocab.encode(ex.source)
        assert 3 not in ids  # no <unk>
        assert "".join(vocab.decode(ids)) == ex.source
    batch = date_batch(splits.train[:5], vocab, "dmy")
    for i, ex in enumerate(splits.train[:5]):
        assert "".join(vocab.decode(batch.src[i])) == ex.source
        assert "".join(vocab.decode(batch.tgt_in[i])) == ex.targets["dmy"]
        assert batch.tgt_out[i, 10] == EOS_ID
    with pytest.raises(ValueError, match="'iso', 'dmy'"):
        date_batch(splits.train, vocab, "us")


def test_alignment_mask_marks_each_target_field_on_its_source_span():
    examples = [date_example(MAY_9, "month d, yyyy"), date_example(MAY_9, "dd.mm.yy")]
    mask = alignment_mask(examples, "iso")
    batch = date_batch(examples, date_vocabulary(), "iso")
    assert mask.shape == (2, batch.tgt_out.shape[1], batch.src.shape[1]) == (2, 11, 11)
    # "may 9, 2018": target "2018" (positions 0-3) -> source 7..10, "05" -> "may", "09" -> "9"
    assert mask[0, 0].nonzero().flatten().tolist() == [7, 8, 9, 10]
    assert mask[0, 5].nonzero().flatten().tolist() == [0, 1, 2]
    assert mask[0, 9].nonzero().flatten().tolist() == [4]
    # separators and <eos> align with nothing
    assert not mask[0, 4].any() and not mask[0, 7].any() and not mask[0, 10].any()
    # "09.05.18": year "2018" -> "18" at source 6..7
    assert mask[1, 3].nonzero().flatten().tolist() == [6, 7]
    assert not mask[1, :, 8:].any()  # padding of the shorter source
    with pytest.raises(ValueError, match="shape"):
        alignment_mask(examples, "iso", shape=(10, 11))
