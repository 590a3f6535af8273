"""Plots from the saved results: bench/results/throughput.png (send throughput of ours against the
alternatives) and bench/results/lag.png (distribution of schedule lag and of high-priority latency).
Run: bench/run plot (bench/run_all runs it last)."""

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.common import RESULTS  # noqa: E402


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def throughput() -> str | None:
    send = _load("send")
    if not send:
        return None
    items = [(k, v["per_second"]) for k, v in send["results"].items() if not k.startswith("sink check")]
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = ["#2b6cb0" if k == "mailsched" else "#a0aec0" for k, _ in items]
    bars = ax.barh([k for k, _ in items], [v for _, v in items], color=colors)
    ax.bar_label(bars, labels=[f"{v:,.0f}/s" for _, v in items], padding=3)
    ax.invert_yaxis()
    ax.set_xlabel("messages per second handed to smtp-sink (higher is better)")
    machine = send["machine"]
    ax.set_title(
        f"Send throughput, {send['recipients']:,} personalised messages, concurrency {send['concurrency']}\n"
        f"{machine['date'][:10]}, {machine['cores']} cores",
        fontsize=10,
    )
    ax.margins(x=0.2)
    fig.tight_layout()
    out = RESULTS / "throughput.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out)


def lag() -> str | None:
    precision, priority = _load("precision"), _load("priority")
    if not precision and not priority:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    if precision:
        ax = axes[0]
        for name, values in precision.get("lags", {}).items():
            if values:
                ax.hist(values, bins=60, alpha=0.6, label=f"{name.replace('_', ' ')} (n={len(values):,})")
        ax.set_xlabel("seconds from due time to SMTP hand-off")
        ax.set_ylabel("messages")
        ax.set_title("Schedule precision", fontsize=10)
        ax.legend(fontsize=8)
    if priority:
        ax = axes[1]
        for r in priority["results"]:
            values = sorted(r.get("lags", []))
            if values:
                ax.plot(values, [(i + 1) / len(values) for i in range(len(values))], label=r["mode"])
        ax.set_xlabel("seconds from accept to SMTP hand-off")
        ax.set_ylabel("share of messages (CDF)")
        ax.set_title("High-priority transactional during a big campaign", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = RESULTS / "lag.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return str(out)


def main(argv=None) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    for made in (throughput(), lag()):
        if made:
            print(f"saved {made}")


if __name__ == "__main__":
    main()
