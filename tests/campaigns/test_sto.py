"""The Send Time Optimization scorer (campaigns.sto) on hand-built histories: no database, numbers only."""

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from audience import engagement as eng
from campaigns import sto

MONDAY = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday, 00:00 UTC: bucket 0
NOW = MONDAY + timedelta(days=7)


def history(*opens: tuple[datetime, str] | datetime, exposure: list[datetime] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Engagement and exposure rows folded event by event as the live path does, decayed to NOW."""
    data, decayed_to = eng.EMPTY, None
    for item in opens:
        at, kind = item if isinstance(item, tuple) else (item, "opened")
        data, decayed_to = eng.fold(data, decayed_to, at=at, bucket=eng.hour_of_week(at), amount=eng.weight(kind))
    sent, sent_to = eng.EMPTY, decayed_to
    for at in exposure:
        sent, sent_to = eng.fold(sent, sent_to, at=at, bucket=eng.hour_of_week(at), amount=1.0)
    factor = eng.decay_to([decayed_to], NOW)[0]
    return eng.vector(data) * factor, eng.vector(sent) * factor


def plan_one(counts, *, prior=None, start=NOW, hours=24, jitter=0.0, exposure=None, **kwargs) -> sto.Plan:
    counts = np.atleast_2d(counts)
    if exposure is not None:
        counts = eng.exposure_corrected(counts, np.atleast_2d(exposure))
    return sto.score(
        counts=counts,
        prior=np.zeros(eng.HOURS_OF_WEEK) if prior is None else prior,
        prior_strength=5.0,
        starts=np.array([int(start.timestamp())] * counts.shape[0]),
        window_hours=hours,
        jitter=np.full(counts.shape[0], jitter),
        **kwargs,
    )


def sent_at(plan: sto.Plan, i: int = 0) -> datetime:
    return datetime.fromtimestamp(int(plan.send_at[i]), UTC)


def at_hour(hour: int, weeks_ago: int = 1) -> datetime:
    """A Monday `weeks_ago` weeks before NOW (itself a Monday 00:00 UTC), at `hour`:00 UTC."""
    return NOW - timedelta(weeks=weeks_ago) + timedelta(hours=hour)


def prior_at(hour: int, weight: float = 100.0) -> np.ndarray:
    prior = np.zeros(eng.HOURS_OF_WEEK)
    prior[hour] = weight  # Monday `hour`:00
    return prior


def test_a_strong_own_history_wins_over_the_prior():
    engagement, _ = history(*[at_hour(15, weeks_ago=week) for week in range(1, 40)])
    plan = plan_one(engagement, prior=prior_at(9, weight=10_000))
    assert (sent_at(plan).hour, sto.CODES[int(plan.code[0])]) == (15, "own_history")


def test_a_sparse_history_leans_on_the_prior():
    engagement, _ = history(at_hour(15))
    plan = plan_one(engagement, prior=prior_at(9, weight=10_000))
    assert (sent_at(plan).hour, sto.CODES[int(plan.code[0])]) == (9, "own_history")


def test_no_own_history_takes_the_audiences_best_hour():
    plan = plan_one(np.zeros(eng.HOURS_OF_WEEK), prior=prior_at(11))
    assert (sent_at(plan).hour, sto.CODES[int(plan.code[0])]) == (11, "audience_history")


def test_no_history_anywhere_is_the_window_start():
    plan = plan_one(np.zeros(eng.HOURS_OF_WEEK), start=NOW + timedelta(minutes=17))
    assert (sent_at(plan), sto.CODES[int(plan.code[0])]) == (NOW + timedelta(minutes=17), "window_start")


def test_machine_opens_are_recognised_by_agent_and_by_speed():
    scanner = eng.is_machine_open(user_agent="Barracuda Sentinel (EE)", seconds_after_handoff=None)
    prefetch = eng.is_machine_open(user_agent="Mozilla/5.0", seconds_after_handoff=None)
    too_soon = eng.is_machine_open(user_agent="Mozilla/5.0 (iPhone) AppleWebKit Mobile", seconds_after_handoff=3)
    reader = eng.is_machine_open(user_agent="Mozilla/5.0 (iPhone) AppleWebKit Mobile", seconds_after_handoff=600)
    assert (scanner, prefetch, too_soon, reader) == (True, True, True, False)


def test_decay_makes_an_old_habit_fade():
    # Two years of 19:00 opens long ago, a few recent 07:00 ones: the recent habit wins.
    old = [at_hour(19, weeks_ago=100 + week) for week in range(20)]
    recent = [at_hour(7, weeks_ago=week) for week in range(1, 4)]
    engagement, _ = history(*old, *recent)
    assert sent_at(plan_one(engagement)).hour == 7


def test_decay_halves_weight_every_half_life():
    engagement, _ = history(NOW - timedelta(days=90))
    assert engagement.sum() == np.float32(0.5)


def test_clicks_weigh_more_than_opens():
    engagement, _ = history(at_hour(8), at_hour(8, weeks_ago=2), (at_hour(20), "clicked"))
    assert sent_at(plan_one(engagement)).hour == 20


def test_exposure_correction_keeps_our_own_send_hour_from_teaching_itself():
    # We always sent at 10:00, so most opens came then; the rarer 18:00 opens came from a single send.
    sends = [at_hour(10, weeks_ago=w) for w in range(1, 21)] + [at_hour(18, weeks_ago=3)]
    opens = [at_hour(10, weeks_ago=w) for w in range(1, 8)] + [at_hour(18, weeks_ago=3)] * 2
    engagement, exposure = history(*opens, exposure=sends)
    naive, corrected = plan_one(engagement), plan_one(engagement, exposure=exposure)
    assert (sent_at(naive).hour, sent_at(corrected).hour) == (10, 18)


def test_an_hour_outside_the_window_is_not_chosen():
    engagement, _ = history(*[at_hour(23, weeks_ago=w) for w in range(1, 10)])
    plan = plan_one(engagement, hours=12, prior=prior_at(5))
    assert sent_at(plan).hour == 5


def test_the_last_hour_of_the_window_can_be_chosen_and_stays_inside():
    engagement, _ = history(*[at_hour(23, weeks_ago=w) for w in range(1, 10)])
    plan = plan_one(engagement, hours=24, jitter=0.9999)
    assert NOW + timedelta(hours=23) <= sent_at(plan) < NOW + timedelta(hours=24)


def test_a_window_starting_mid_hour_scores_that_hour_from_its_start():
    engagement, _ = history(*[at_hour(0, weeks_ago=w) for w in range(1, 10)])
    start = NOW + timedelta(minutes=40)
    plan = plan_one(engagement, start=start, jitter=0.5)
    assert sent_at(plan) == start + timedelta(minutes=30)


def test_jitter_spreads_within_the_hour_and_is_stable_per_contact():
    keys = [uuid.uuid4() for _ in range(2000)]
    joined = b"".join(k.bytes for k in keys)
    first, again = sto.jitter_of(joined, len(keys)), sto.jitter_of(joined, len(keys))
    histogram = np.histogram(first, bins=4, range=(0, 1))[0]
    assert (first == again).all() and first.min() >= 0 and first.max() < 1 and histogram.min() > 400


def test_jitter_never_moves_a_contact_out_of_its_hour():
    engagement, _ = history(*[at_hour(6, weeks_ago=w) for w in range(1, 10)])
    plans = [plan_one(engagement, jitter=j) for j in (0.0, 0.5, 0.99999)]
    assert {sent_at(p).replace(minute=0, second=0) for p in plans} == {NOW + timedelta(hours=6)}


def test_holdout_share_is_exact_within_rounding():
    for n, percent in [(1, 10), (7, 10), (100, 10), (999, 25), (1000, 3), (20_001, 50)]:
        keys = sto.holdout_keys(b"".join(uuid.uuid4().bytes for _ in range(n)), n, salt=42)
        threshold = sto.holdout_threshold(keys, percent)
        held = 0 if threshold is None else int((keys <= np.uint64(threshold)).sum())
        assert held == n * percent // 100, (n, percent)


def test_the_holdout_depends_on_contact_and_campaign_not_on_order():
    ids = b"".join(uuid.uuid4().bytes for _ in range(1000))
    shuffled = b"".join(ids[16 * i : 16 * i + 16] for i in reversed(range(1000)))
    keys = sto.holdout_keys(ids, 1000, salt=1)
    assert sorted(sto.holdout_keys(shuffled, 1000, salt=1).tolist()) == sorted(keys.tolist())
    threshold = sto.holdout_threshold(keys, 10)
    other = sto.holdout_keys(ids, 1000, salt=2)
    other_threshold = sto.holdout_threshold(other, 10)
    # Another campaign holds out other contacts (nearly all of them: 10% of 10% overlap by chance).
    assert ((keys <= np.uint64(threshold)) & (other <= np.uint64(other_threshold))).sum() < 40


def test_holdout_recipients_get_the_window_start():
    engagement, _ = history(*[at_hour(6, weeks_ago=w) for w in range(1, 10)])
    plan = plan_one(np.vstack([engagement, engagement]), holdout=np.array([True, False]))
    assert [sto.CODES[int(c)] for c in plan.code] == ["holdout", "own_history"]
    assert (sent_at(plan, 0), sent_at(plan, 1).hour) == (NOW, 6)


def test_excluded_hours_are_skipped():
    engagement, _ = history(*[at_hour(6, weeks_ago=w) for w in range(1, 10)], at_hour(8))
    excluded = np.zeros(24, dtype=bool)
    excluded[6] = True
    assert sent_at(plan_one(engagement, excluded=excluded)).hour == 8


def test_hour_of_week_buckets_start_on_monday_utc():
    buckets = sto.bucket_of(np.array([int(MONDAY.timestamp()), int((MONDAY + timedelta(hours=167)).timestamp())]))
    assert buckets.tolist() == [0, 167] and eng.hour_of_week(MONDAY + timedelta(days=2, hours=9)) == 57


def test_day_pooling_lets_a_tuesday_habit_inform_a_monday_window():
    tuesday_15 = [at_hour(24 + 15, weeks_ago=w) for w in range(1, 6)]
    engagement, _ = history(*tuesday_15)
    apart, pooled = plan_one(engagement), plan_one(engagement, day_pooling=0.5)
    assert (sto.CODES[int(apart.code[0])], sent_at(pooled).hour) == ("window_start", 15)


def test_audience_exposure_correction_does_not_let_unsent_hours_explode():
    engagement, exposure = np.zeros(eng.HOURS_OF_WEEK), np.zeros(eng.HOURS_OF_WEEK)
    engagement[[10, 11, 20]] = [900, 300, 40]  # we sent 5,000 at 10:00 and 100 at 20:00
    exposure[[10, 20]] = [5000, 100]
    corrected = eng.exposure_corrected(engagement, exposure)
    assert int(np.argmax(corrected)) == 20 and corrected.sum() == pytest.approx(engagement.sum())


def test_a_local_time_prior_sends_each_zone_at_the_audiences_local_hour():
    local = prior_at(9)  # the audience reads at Monday 09:00 on its own clock
    tokyo, new_york = eng.utc_offset_hours("Asia/Tokyo", NOW), eng.utc_offset_hours("America/New_York", NOW)
    priors = np.stack([eng.utc_prior(local, tokyo), eng.utc_prior(local, new_york)])
    plan = sto.score(
        counts=np.zeros((2, eng.HOURS_OF_WEEK)),
        prior=priors,
        prior_strength=5.0,
        starts=np.array([int((NOW - timedelta(hours=12)).timestamp())] * 2),
        window_hours=48,
        jitter=np.zeros(2),
    )
    assert sent_at(plan, 0) == NOW + timedelta(hours=9 - 9)  # Monday 09:00 JST is 00:00 UTC
    assert sent_at(plan, 1) == NOW + timedelta(hours=9 + 4)  # Monday 09:00 EDT is 13:00 UTC


def test_utc_offsets_round_to_the_nearest_hour():
    summer = datetime(2026, 6, 1, tzinfo=UTC)
    assert [eng.utc_offset_hours(z, summer) for z in ("Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns", "UTC")] == [
        6,
        6,
        -2,
        0,
    ]
