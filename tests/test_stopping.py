"""The per-text stopping rule (memcap.core.engine.Stopping, docs/method.md section 1.5), alone."""

import math

from memcap.core.engine import Stopping


def feed(state, scorings):
    """observe() each (loss, correct, sure) until a stop, adding a step after each that goes on,
    as compress_batch() does; the observe() answers."""
    answers = []
    for loss, correct, sure in scorings:
        answers.append(state.observe(loss, correct, sure))
        if state.reason:
            break
        state.steps += 1
    return answers


def test_all_positions_right_converges_at_once():
    state = Stopping(scored=4, max_steps=100, patience=100)
    assert feed(state, [(9.0, 1, 1), (5.0, 3, 3), (1.0, 4, 4), (0.5, 4, 4)]) == [True, True, True]
    assert state.reason == "converged" and state.steps == 2
    assert state.best_correct == 4 and state.best_accuracy == 1.0


def test_a_margin_short_of_every_position_does_not_converge():
    """`sure` (positions right by the margin), not `correct`, decides convergence."""
    state = Stopping(scored=4, max_steps=100, patience=100)
    assert state.observe(1.0, correct=4, sure=3) is True
    assert state.reason == "" and state.best_correct == 4
    state.steps += 1
    state.observe(0.8, correct=4, sure=4)
    assert state.reason == "converged"


def test_patience_counts_scorings_without_a_rise_of_the_correct_count():
    state = Stopping(scored=10, max_steps=100, patience=3)
    feed(state, [(5.0, 2, 2), (6.0, 1, 1), (7.0, 2, 2), (8.0, 0, 0), (9.0, 2, 2)])
    assert state.reason == "patience" and state.since == 3 and state.steps == 3
    assert state.best_correct == 2 and state.best_loss == 5.0


def test_a_rise_resets_patience_but_a_tie_with_lower_loss_only_updates_the_best():
    state = Stopping(scored=10, max_steps=100, patience=3)
    answers = feed(state, [(5.0, 2, 2), (4.0, 2, 2), (3.0, 2, 2), (6.0, 3, 3), (9.0, 1, 1), (8.0, 1, 1)])
    # the ties at 4.0 and 3.0 are new bests yet count toward patience; 3 correct resets it
    assert answers[:4] == [True, True, True, True]
    assert (state.best_correct, state.best_loss) == (3, 6.0)
    assert state.reason == "" and state.since == 2
    assert state.observe(7.0, 2, 2) is False and state.reason == "patience"


def test_max_steps_stops_after_that_many_updates_even_when_improving():
    state = Stopping(scored=10, max_steps=3, patience=100)
    answers = feed(state, [(9.0 - s, s, s) for s in range(10)])
    assert answers == [True] * 4  # the scoring after the 3rd update is judged, then it stops
    assert state.reason == "max_steps" and state.steps == 3 and state.best_correct == 3


def test_ties_with_a_lower_loss_still_run_out_of_patience():
    state = Stopping(scored=10, max_steps=100, patience=2)
    assert feed(state, [(5.0, 2, 2), (4.0, 2, 2), (3.0, 2, 2)]) == [True, True, True]
    assert state.reason == "patience" and state.best_loss == 3.0


def test_convergence_wins_over_max_steps_and_max_steps_over_patience():
    state = Stopping(scored=2, max_steps=1, patience=1)
    feed(state, [(3.0, 1, 1), (0.1, 2, 2)])
    assert state.reason == "converged" and state.steps == 1
    state = Stopping(scored=2, max_steps=1, patience=1)
    feed(state, [(3.0, 1, 1), (4.0, 0, 0)])
    assert state.reason == "max_steps" and state.since == 1


def test_a_non_finite_loss_stops_with_nan_and_leaves_the_best_alone():
    state = Stopping(scored=5, max_steps=100, patience=100)
    assert state.observe(2.0, 3, 3) is True
    state.steps += 1
    assert state.observe(math.nan, 5, 5) is False
    assert state.reason == "nan" and state.best_correct == 3 and state.min_loss == 2.0
    assert Stopping(scored=5, max_steps=9, patience=9).observe(math.inf, 0, 0) is False


def test_nan_at_the_first_scoring_leaves_no_best():
    state = Stopping(scored=5, max_steps=100, patience=100)
    state.observe(math.nan, 0, 0)
    assert state.reason == "nan" and state.best_correct == -1 and state.min_loss == math.inf
    assert state.best_accuracy < 0


def test_min_loss_is_over_every_scoring_not_only_the_best():
    """A lower loss at fewer correct positions is no new best but is the minimum loss."""
    state = Stopping(scored=10, max_steps=100, patience=100)
    assert feed(state, [(5.0, 4, 4), (2.0, 3, 3), (4.0, 4, 4)]) == [True, False, True]
    assert state.min_loss == 2.0 and state.best_loss == 4.0 and state.best_correct == 4
