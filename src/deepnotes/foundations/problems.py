"""Numeric problems of the foundations topic, answered by the library."""

from __future__ import annotations

from deepnotes.core.catalog import Answer, problem
from deepnotes.foundations.probability import bayes, conditional_probability, probability

# The notes' observations (discussion 1, problem 2): one row per person, (headache, flu).
HEADACHE_FLU = [("N", "N"), ("Y", "N"), ("N", "N"), ("Y", "Y"), ("Y", "Y"), ("N", "Y")]


@problem(
    "Do I have a flu? (Bayes from a table)", topic="foundations", source="discussion 1, problem 2"
)
def headache_and_flu() -> Answer:
    headache = [h == "Y" for h, _ in HEADACHE_FLU]
    flu = [f == "Y" for _, f in HEADACHE_FLU]
    p_f, p_h = probability(flu), probability(headache)
    p_h_given_f = conditional_probability(headache, given=flu)
    return Answer(
        [
            ("P(F)", p_f),
            ("P(H)", p_h),
            ("P(H|F)", p_h_given_f),
            ("P(F|H) by Bayes = P(H|F) P(F) / P(H)", bayes(p_h_given_f, p_f, p_h)),
            ("P(F|H) counted directly (check)", conditional_probability(flu, given=headache)),
        ],
        note="frequencies over the notes' six observations; Bayes' theorem agrees with the count",
    )
