"""Reads py-spy's raw (collapsed stack) output into the shares a report needs: where the busy samples
end (by library: PostgreSQL driver, SMTP, templates, ...) and, for the product's own functions, the
share of samples in which each is on the stack (inclusive) and on top of it (self)."""

import re
from collections import Counter
from pathlib import Path

# py-spy frames look like "function (module/path.py:123)"; the line number is dropped to merge a function.
FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::\d+)?\)$")
OURS = ("delivery/", "campaigns/", "audience/", "common/", "transactional/", "accounts/")
# Where a sample's top frame lives -> what it is doing.
KINDS = [
    ("PostgreSQL driver (psycopg)", ("psycopg",)),
    ("SMTP (smtplib, socket)", ("smtplib.py", "socket.py", "ssl.py")),
    ("templates (jinja2)", ("jinja2/",)),
    ("Django ORM and DB backend", ("django/db/",)),
    ("MIME building (email, delivery/mime)", ("email/", "delivery/mime.py", "quopri", "base64")),
    ("Celery, kombu, billiard, redis", ("celery/", "kombu/", "billiard/", "redis/")),
    ("our code (delivery, campaigns, audience, common)", OURS),
    ("DRF, django-filter", ("rest_framework/", "django_filters/", "drf_spectacular/")),
    ("Django (other)", ("django/",)),
]


def _split(frame: str) -> tuple[str, str]:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip(), ""
    path = match.group("file")
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return match.group("func"), path


def _kind(path: str) -> str:
    for name, needles in KINDS:
        if any(needle in path for needle in needles):
            return name
    return "other (stdlib, interpreter)"


def summarize_raw(path: str, *, top: int = 20) -> dict:
    inclusive: Counter = Counter()
    own: Counter = Counter()
    kinds: Counter = Counter()
    total = 0
    text = Path(path).read_text() if Path(path).exists() else ""
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_split(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += n
        for func, file in set(frames):
            if file.startswith(OURS):
                inclusive[f"{func} ({file})"] += n
        func, file = frames[-1]
        own[f"{func} ({file})"] += n
        kinds[_kind(file)] += n
    share = (lambda c: round(100 * c / total, 1)) if total else (lambda c: 0.0)
    ours = [{"function": name, "inclusive": share(c)} for name, c in inclusive.most_common(top)]
    by_self = [{"function": name, "self": share(c)} for name, c in own.most_common(top)]
    by_kind = [{"kind": name, "share": share(c)} for name, c in kinds.most_common()]
    lines = [f"py-spy: {total} busy samples. Where they end, by library:"]
    lines += [f"  {r['share']:5.1f}%  {r['kind']}" for r in by_kind]
    lines += ["Our functions, share of samples with them on the stack:"]
    lines += [f"  {r['inclusive']:5.1f}%  {r['function']}" for r in ours]
    lines += ["Top self time:"] + [f"  {r['self']:5.1f}%  {r['function']}" for r in by_self[:12]]
    return {
        "samples": total,
        "by_kind": by_kind,
        "ours": ours,
        "self": by_self,
        "text": "\n".join(lines),
        "raw_file": path,
    }


if __name__ == "__main__":
    import sys

    print(summarize_raw(sys.argv[1])["text"])
