"""STO simulation: how well the product's scorer (campaigns.sto, with the profile arithmetic of
audience.engagement) finds each contact's preferred hour from a noisy open history, against two baselines,
on synthetic contacts whose truth is known. Seeded: the same arguments print the same table.

The synthetic world:
- contacts across 12 UTC offsets, each with a preferred local hour (peaks at breakfast, lunch and
  evening), the same every day; 30% changed habit half a year ago (their old hour is in the history);
- the list was mailed every week at one fixed instant (Tuesday 10:00 UTC), for 1 to 52 weeks depending on
  when the contact joined: this is the exposure a naive counter learns from;
- per send, the contact opens with a probability that falls with the distance of the send's local hour from
  their preferred hour; an open comes either right after the send (half the time) or at their preferred
  hour the next time it comes round; 20% of contacts also have a mail client that prefetches every message
  seconds after delivery (machine opens, with Apple's bare "Mozilla/5.0" user agent);
- the response model scores a plan: P(open) = 0.05 + 0.45 * exp(-d^2 / 8), d = hours between the planned
  local hour and the preferred one (the expected value, not a draw, so the comparison carries no sampling
  noise of its own).

Contenders, all planning a 24-hour window from Monday 00:00 UTC:
(a) everyone at the window start;
(b) per contact, the hour of the day with the most human opens (machine opens left out, no prior, no
    decay, no exposure correction), else the window start;
(c) ours: decayed, exposure-corrected, clicks weighted, smoothed towards the audience profile kept in
    local time.

Run: bench/run sto-sim [--contacts 20000] [--seed 7]
"""

import argparse

import numpy as np

from bench.common import log, print_table, save_result, setup_django

DAY, HOUR, WEEK = 86400, 3600, 7 * 86400
OFFSETS = np.array([-8, -6, -5, -3, 0, 1, 2, 3, 5, 7, 8, 10])  # hours east of UTC
LAUNCH = 1_780_272_000  # Monday 2026-06-01 00:00 UTC
SEND_SLOT = DAY + 10 * HOUR  # Tuesday 10:00 UTC, from a Monday
WINDOW = 24
GROUPS = (("none (0 human opens)", 0, 0), ("sparse (1-3)", 1, 3), ("medium (4-19)", 4, 19), ("rich (20+)", 20, 10**9))


def world(rng: np.random.Generator, n: int) -> dict:
    offsets = rng.choice(OFFSETS, size=n)
    peaks = rng.choice([8, 12, 20], size=n, p=[0.4, 0.25, 0.35])
    preferred = (peaks + rng.integers(-2, 3, size=n)) % 24
    changed = rng.random(n) < 0.3
    old = np.where(changed, (preferred + rng.integers(4, 12, size=n)) % 24, preferred)
    weeks = rng.choice([1, 2, 3, 6, 12, 26, 52], size=n)
    prefetch = rng.random(n) < 0.2
    return {"offsets": offsets, "preferred": preferred, "old": old, "weeks": weeks, "prefetch": prefetch}


def response(local_hour: np.ndarray, preferred: np.ndarray) -> np.ndarray:
    d = np.abs(local_hour - preferred) % 24
    d = np.minimum(d, 24 - d)
    return 0.05 + 0.45 * np.exp(-(d**2) / 8)


def history(rng: np.random.Generator, w: dict) -> dict:
    """Every past send and open: arrays of (contact, instant, kind, machine)."""
    n = len(w["offsets"])
    contact, sent = [], []
    for c in range(n):
        k = w["weeks"][c]
        sends = LAUNCH - WEEK * np.arange(1, k + 1) + SEND_SLOT - WEEK
        contact.append(np.full(k, c))
        sent.append(sends)
    contact, sent = np.concatenate(contact), np.concatenate(sent)
    habit_changed_at = LAUNCH - 26 * WEEK
    habit = np.where(sent < habit_changed_at, w["old"][contact], w["preferred"][contact])
    local = ((sent // HOUR) + w["offsets"][contact]) % 24
    opened = rng.random(len(sent)) < np.clip(response(local, habit) * 1.3, 0, 1)
    soon = rng.random(len(sent)) < 0.5
    # The next time the preferred local hour comes round after the send, a few minutes into it.
    until = ((habit - w["offsets"][contact] - (sent // HOUR)) % 24) * HOUR
    at_habit = sent + until + rng.integers(0, 50 * 60, size=len(sent))
    right_after = sent + rng.exponential(40 * 60, size=len(sent)).astype(np.int64) + 60
    open_at = np.where(soon, right_after, at_habit)
    human = {"contact": contact[opened], "at": open_at[opened], "kind": np.where(rng.random(opened.sum()) < 0.15, 1, 0)}
    prefetched = w["prefetch"][contact]
    machine = {"contact": contact[prefetched], "at": sent[prefetched] + rng.integers(1, 8, size=prefetched.sum())}
    return {"sends": {"contact": contact, "at": sent}, "human": human, "machine": machine}


def buckets(at: np.ndarray) -> np.ndarray:
    from campaigns.sto import bucket_of

    return bucket_of(at)


def plan_baseline_b(n: int, h: dict, starts: np.ndarray) -> np.ndarray:
    """Each contact's most frequent open hour of the day (UTC, human opens, raw counts), at its first
    occurrence in the window; no opens: the window start."""
    counts = np.zeros((n, 24))
    np.add.at(counts, (h["human"]["contact"], (h["human"]["at"] // HOUR) % 24), 1.0)
    slots = starts[:, None] + np.arange(WINDOW)[None, :] * HOUR
    scores = np.take_along_axis(counts, (slots // HOUR) % 24, axis=1)
    best = np.argmax(scores, axis=1)
    return np.where(scores.max(axis=1) > 0, slots[np.arange(n), best], starts)


def plan_ours(n: int, h: dict, starts: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    from django.conf import settings

    from audience import engagement as eng
    from campaigns import sto

    # What the profiles hold once every event is folded and decayed to the launch (audience.engagement):
    # the machine opens are recognised by the same rule the tracking path applies, and left out.
    events_contact = np.concatenate([h["human"]["contact"], h["machine"]["contact"]])
    events_at = np.concatenate([h["human"]["at"], h["machine"]["at"]])
    kind = np.concatenate([h["human"]["kind"], np.zeros(len(h["machine"]["at"]), dtype=int)])
    agent = np.array(
        ["Mozilla/5.0 (iPhone) AppleWebKit Mobile"] * len(h["human"]["at"]) + ["Mozilla/5.0"] * len(h["machine"]["at"])
    )
    handed_off = np.concatenate([np.full(len(h["human"]["at"]), -1), h["machine"]["at"] - 3])
    machine = np.array(
        [
            eng.is_machine_open(user_agent=a, seconds_after_handoff=(t - s) if s >= 0 else None)
            for a, t, s in zip(agent, events_at, handed_off, strict=True)
        ]
    )
    keep = ~machine
    weights = np.where(kind[keep] == 1, settings.STO_CLICK_WEIGHT, 1.0) * eng.decay(LAUNCH - events_at[keep])
    engagement = np.zeros((n, 168))
    np.add.at(engagement, (events_contact[keep], buckets(events_at[keep])), weights)
    exposure = np.zeros((n, 168))
    np.add.at(exposure, (h["sends"]["contact"], buckets(h["sends"]["at"])), eng.decay(LAUNCH - h["sends"]["at"]))
    counts = eng.exposure_corrected(engagement, exposure)
    # The audience's prior in each contact's local time (audience.selectors.engagement_prior), then moved
    # into each contact's zone as the planner does (audience.engagement.utc_prior).
    local_engagement, local_exposure = np.zeros(168), np.zeros(168)
    prior = np.zeros((n, 168))
    for offset in np.unique(offsets).tolist():
        rows = offsets == offset
        local_engagement += np.roll(engagement[rows].sum(axis=0), offset)
        local_exposure += np.roll(exposure[rows].sum(axis=0), offset)
    local_prior = eng.exposure_corrected(local_engagement, local_exposure)
    for offset in np.unique(offsets).tolist():
        prior[offsets == offset] = eng.utc_prior(local_prior, offset)
    keys = np.random.default_rng(0).bytes(16 * n)
    plan = sto.score(
        counts=counts,
        prior=prior,
        prior_strength=settings.STO_PRIOR_STRENGTH,
        day_pooling=settings.STO_DAY_POOLING,
        starts=starts,
        window_hours=WINDOW,
        jitter=sto.jitter_of(keys, n),
    )
    return plan.send_at


def evaluate(w: dict, send_at: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    local = ((send_at // HOUR) + w["offsets"]) % 24
    hit = (local == w["preferred"])[mask].mean()
    rate = response(local, w["preferred"])[mask].mean()
    return float(hit), float(rate)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/run sto-sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    setup_django()
    rng = np.random.default_rng(args.seed)
    log(f"simulating {args.contacts:,} contacts (seed {args.seed})")
    w = world(rng, args.contacts)
    h = history(rng, w)
    n = args.contacts
    starts = np.full(n, LAUNCH, dtype=np.int64)
    plans = {"a": starts, "b": plan_baseline_b(n, h, starts), "c": plan_ours(n, h, starts, w["offsets"])}
    human = np.bincount(h["human"]["contact"], minlength=n)
    rows, results = [], []
    for name, low, high in (*GROUPS, ("all", 0, 10**9)):
        mask = (human >= low) & (human <= high)
        scores = {k: evaluate(w, p, mask) for k, p in plans.items()}
        results.append(
            {
                "group": name,
                "contacts": int(mask.sum()),
                **{k: {"preferred_hour": v[0], "open_rate": v[1]} for k, v in scores.items()},
            }
        )
        rows.append(
            [name, int(mask.sum())] + [f"{scores[k][0]:.1%}" for k in "abc"] + [f"{scores[k][1]:.1%}" for k in "abc"]
        )
    table = print_table(
        f"STO simulation: {n:,} contacts, seed {args.seed}, 24 h window "
        "((a) window start, (b) most frequent open hour, (c) ours)",
        ["history", "contacts", "in pref. hour a", "b", "c", "open rate a", "b", "c"],
        rows,
    )
    save_result("sto-sim", {"contacts": n, "seed": args.seed, "results": results, "table": table})
    return {"results": results}


if __name__ == "__main__":
    main()
