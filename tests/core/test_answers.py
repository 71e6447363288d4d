"""Answer extraction and comparison on completions shaped like real student chains."""

from __future__ import annotations

import pytest

from aicd.answers import answers_match, extract_answer, normalize_answer, normalize_number

NUMBER_CASES = [
    ("Tom has 5 apples and buys 7 more. 5 + 7 = 12. So, the answer is 12.", "12"),
    ("She earns $1,234 a month. So, the answer is $1,234.", "1234"),
    ("… So, the answer is $1,234.", "1234"),
    ("The total cost is 3 * $2.50 = $7.50. The answer is $7.50.", "7.5"),
    ("He ends with 10 - 13 = -3 dollars. So, the answer is -3.", "-3"),
    ("The discount is 20 / 80 = 25%. So, the answer is 25%.", "25"),
    ("Each share is 18 / 4 = 4.5. So, the answer is 4.5", "4.5"),
    ("The answer is 12.0.", "12"),
    ("So, the answer is 1,000,000.", "1000000"),
    ("So, the answer is 40. Then 40 + 2 = 42 more steps.", "40"),  # announced answer beats later numbers
    ("So the answer is 6. Wait, recount: 7 - 1 = 8. So, the answer is 8.", "8"),  # the last announcement wins
    ("The answer is: 56", "56"),
    ("First 3 + 4 = 7, then 7 * 2 = 14.", "14"),  # no announcement: the last number
    ("He pays 3 x $0.75 = $2.25 in total", "2.25"),
    ("The temperature drops to -5 degrees.", "-5"),
    ("5-3=2 apples remain", "2"),  # '-' between digits is subtraction, not a sign
    ("Half of the pie is 1/2, so the answer is 1/2.", "0.5"),
    ("#### 72", "72"),
    ("So, the answer is five.", "5"),
    ("So, the answer is 10 - 3 = 7.", "7"),  # an equation in the announcement: its result
    ("The answer is 3 apples. 3 + 2 = 5 is not asked.", "3"),
    ("The answer is 3.50 dollars.", "3.5"),
    ("So, the answer is .5", "0.5"),  # no leading digit: the same canonical form as "0.5" and "1/2"
    ("A cup costs $.75, so the answer is $.75.", "0.75"),
    ("The level falls by .25 each hour, so it ends at -.5.", "-0.5"),
    ("There are no numbers here at all.", None),
    ("", None),
    ("So, the answer is unknown.", None),
]

YESNO_CASES = [
    ("Hamsters are prey animals. So, the answer is yes.", "yes"),
    ("The sky is not green. So, the answer is No.", "no"),
    ("No, a penguin cannot fly.", "no"),
    ("Yes. Paris is in France.", "yes"),
    ("There is no evidence against it. So, the answer is yes.", "yes"),  # announcement beats an earlier "no"
    ("The answer is: False", "no"),
    ("It was built in 1990. so the answer is YES!", "yes"),
    ("I think so, no doubt about it, yes.", "yes"),  # no announcement: the last yes/no word
    ("It is unclear what the question means.", None),
]


@pytest.mark.parametrize(("text", "expected"), NUMBER_CASES)
def test_extract_number(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="number") == expected


@pytest.mark.parametrize(("text", "expected"), YESNO_CASES)
def test_extract_yesno(text: str, expected: str | None) -> None:
    assert extract_answer(text, kind="yesno") == expected


def test_public_example_from_the_issue() -> None:
    assert extract_answer("… So, the answer is $1,234.", kind="number") == "1234"
    assert extract_answer("So, the answer is yes.", kind="yesno") == "yes"
    assert extract_answer("nothing to see", kind="number") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("$1,234.", "1234"),
        ("1234.00", "1234"),
        ("2.50", "2.5"),
        ("12%", "12"),
        ("-3", "-3"),
        ("0.125", "0.125"),
        ("3/4", "0.75"),
        ("abc", None),
        (None, None),
        ("-0", "0"),
        (".5", "0.5"),
    ],
)
def test_normalize_number(raw: str | None, expected: str | None) -> None:
    assert normalize_number(raw) == expected


@pytest.mark.parametrize(
    ("pred", "gold", "kind", "same"),
    [
        ("2.50", "2.5", "number", True),
        ("1,234", "1234", "number", True),
        ("0.3333333", "0.3333333", "number", True),
        ("12", "12.0", "number", True),
        (".5", "0.5", "number", True),
        ("12", "13", "number", False),
        ("-3", "3", "number", False),
        (None, "3", "number", False),
        ("yes.", "yes", "yesno", True),
        ("No,", "no", "yesno", True),
        ("yes", "no", "yesno", False),
        (None, "no", "yesno", False),
    ],
)
def test_answers_match(pred: str | None, gold: str, kind: str, same: bool) -> None:
    assert answers_match(pred, gold, kind) is same


def test_normalize_answer_yesno() -> None:
    assert normalize_answer("True", "yesno") == "yes"
    assert normalize_answer("maybe", "yesno") is None


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="answer kind"):
        extract_answer("The answer is 3.", kind="letter")


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        (
            "So, the answer is 7.\n\nQuestion: Tom has 3 apples and buys 9 more. How many?\n"
            "Answer: 3 + 9 = 12. So, the answer is 12.",
            "number",
            "7",
        ),
        ("3 + 4 = 7\nQuestion: what is 5 + 7?\nAnswer: 12", "number", "7"),  # no announcement either
        ("Birds fly. So, the answer is yes.\n\nQ: Can fish fly?\nA: So, the answer is no.", "yesno", "yes"),
        ("The answer is unclear.\n\nQuestion: x?\nAnswer: So, the answer is 12.", "number", None),
        ("The question: how many? So, the answer is 5.", "number", "5"),  # not on a new line: same block
    ],
)
def test_extract_answer_reads_only_the_first_answer_block(text: str, kind: str, expected: str | None) -> None:
    assert extract_answer(text, kind) == expected
