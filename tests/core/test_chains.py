"""Step-by-step chain scoring against programmatic gold rationales (`aicd.chains`)."""

from __future__ import annotations

from aicd.chains import chain_steps, score_chain

GOLD = "bonus=4. 5+3=8. 8+4=12."


def test_steps_are_parsed_in_order_without_spaces():
    assert chain_steps(GOLD) == ["bonus=4", "5+3=8", "8+4=12"]
    assert chain_steps("We have 7 - 2 = 5, then 5+1=6.") == ["7-2=5", "5+1=6"]
    assert chain_steps("") == [] and chain_steps("So, the answer is 3.") == []


def test_the_gold_chain_is_correct_with_any_spacing():
    s = score_chain("bonus=4. 5 + 3 = 8. 8 + 4 = 12. So, the answer is 12.", GOLD, "12")
    assert (s.n_gold, s.n_correct, s.n_generated, s.answer_correct) == (3, 3, 3, True)
    assert s.chain_correct


def test_right_answer_from_a_wrong_chain_is_not_a_correct_chain():
    # wrong rule and a wrong sum that happen to cancel: the answer is right, the chain is not
    s = score_chain("bonus=3. 5+3=9. 9+3=12. So, the answer is 12.", GOLD, "12")
    assert s.answer_correct and not s.chain_correct and s.n_correct == 0


def test_steps_are_compared_by_position():
    s = score_chain("bonus=7. 5+3=8. 8+7=15. So, the answer is 15.", GOLD, "12")
    assert (s.n_correct, s.answer_correct, s.chain_correct) == (1, False, False)
    assert s.step_ok == (False, True, False)
    # an extra step after the gold ones makes the chain wrong even with the right answer
    s = score_chain("bonus=4. 5+3=8. 8+4=12. 12+4=16. So, the answer is 12.", GOLD, "12")
    assert s.n_correct == 3 and s.n_generated == 4 and not s.chain_correct
    # a missing step too
    s = score_chain("bonus=4. 8+4=12. So, the answer is 12.", GOLD, "12")
    assert s.n_correct == 1 and not s.chain_correct and s.step_ok == (True, False, False)


def test_a_chain_without_steps_or_answer_scores_zero():
    s = score_chain("I do not know.", GOLD, "12")
    assert (s.n_correct, s.n_generated, s.answer_correct, s.chain_correct) == (0, 0, False, False)
