"""Small charts for the admin, rendered on the server as inline SVG and HTML: no script, no CDN, so the pages
work offline and print as they look (docs/decisions/090-operators-admin.md)."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

BAR_COLOUR = "#417690"  # the admin's own header blue


def progress_bar(*, progress: dict, label: str = "") -> SafeString:
    """A bar of a run's `progress` ({total, sent, failed, pending}: sent, failed and skipped count as done)
    with the figures in words next to it, so the number is there for a screen reader and for a test."""
    total, failed = progress["total"], progress["failed"]
    done = total - progress["pending"]
    percent = 100 if total == 0 and done else (round(100 * done / total) if total else 0)
    percent = max(0, min(100, percent))
    return format_html(
        '<div class="ms-progress" data-percent="{}">'
        '<div class="ms-progress-track" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{}"'
        ' aria-label="{}"><div class="ms-progress-fill" style="width:{}%"></div></div>'
        '<span class="ms-progress-text">{}% &middot; {} of {}{}</span></div>',
        percent,
        percent,
        label or "progress",
        percent,
        percent,
        done,
        total,
        format_html(" &middot; {} failed", failed) if failed else "",
    )


def hour_histogram(*, per_hour: dict[str, int], zone: str = "UTC", title: str = "") -> SafeString:
    """Bars of recipients per hour. `per_hour` maps an ISO hour ("2026-12-01T09:00:00Z") to a count, as the
    send-plan selector answers it; the hours are labelled in `zone`. Empty hours between the first and the
    last are drawn as gaps, so a spread over a day looks like one."""
    if not per_hour:
        return format_html('<p class="ms-histogram-empty">{}</p>', "No recipients planned.")
    tz = ZoneInfo(zone)
    hours = sorted((datetime.fromisoformat(key.replace("Z", "+00:00")), count) for key, count in per_hour.items())
    first, last = hours[0][0], hours[-1][0]
    span = int((last - first).total_seconds() // 3600) + 1
    if span > 24 * 7:  # a week of bars is the most that stays readable; beyond it, only the hours that have mail
        slots = hours
    else:
        counts = dict(hours)
        slots = [(first + timedelta(hours=i), counts.get(first + timedelta(hours=i), 0)) for i in range(span)]
    peak = max(count for _, count in slots) or 1
    bar_w, gap, height, top, bottom = 14, 2, 120, 16, 34
    width = max(len(slots) * (bar_w + gap) + 40, 200)
    label_every = max(1, len(slots) // 12)
    bars, labels = [], []
    for index, (when, count) in enumerate(slots):
        x = 36 + index * (bar_w + gap)
        bar_h = round(height * count / peak)
        local = when.astimezone(tz)
        bars.append((x, top + height - bar_h, bar_w, bar_h, f"{local:%a %d %b %H:00} {zone}: {count}"))
        if index % label_every == 0:
            labels.append(
                (
                    x + bar_w / 2,
                    top + height + 14,
                    f"{local:%H}h",
                    x + bar_w / 2,
                    top + height + 28,
                    f"{local:%d %b}" if index == 0 or local.hour < label_every else "",
                )
            )
    return format_html(
        '<svg class="ms-histogram" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}"'
        ' xmlns="http://www.w3.org/2000/svg" style="max-width:100%;height:auto">'
        '<text x="0" y="{}" font-size="10" fill="#666">{}</text>'
        '<line x1="34" y1="{}" x2="{}" y2="{}" stroke="#999"/>{}{}</svg>',
        title or f"Recipients per hour ({zone})",
        width,
        top + height + bottom,
        width,
        top + height + bottom,
        top + 4,
        peak,
        top + height,
        width,
        top + height,
        format_html_join(
            "",
            '<rect class="bar" x="{}" y="{}" width="{}" height="{}" fill="' + BAR_COLOUR + '"><title>{}</title></rect>',
            bars,
        ),
        format_html_join(
            "",
            '<text x="{}" y="{}" font-size="9" text-anchor="middle" fill="#444">{}</text>'
            '<text x="{}" y="{}" font-size="9" text-anchor="middle" fill="#888">{}</text>',
            labels,
        ),
    )
