"""Charts drawn on the server as inline SVG: the admin page needs no JavaScript and no CDN."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 40, 24, 12


def _n(value: float) -> str:
    return f"{value:.1f}"


def opens_by_hour_svg(by_hour: list[int], *, zone: str) -> SafeString:
    """A bar per local hour (0-23), the tallest bar at full height, each with its count as a tooltip."""
    peak = max(by_hour)
    plot_h = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT) / 24

    def bar(hour: int, n: int) -> tuple:
        height = n / peak * plot_h if peak else 0
        x, y = LEFT + hour * step + 2, TOP + plot_h - height
        return hour, n, _n(x), _n(y), _n(step - 4), _n(height), f"{hour:02d}:00", zone, n

    bars = format_html_join(
        "",
        '<rect class="bar" data-hour="{}" data-opens="{}" x="{}" y="{}" width="{}" height="{}" fill="#417690">'
        "<title>{} {}: {} opens</title></rect>",
        (bar(hour, n) for hour, n in enumerate(by_hour)),
    )
    labels = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle" fill="#666">{}</text>',
        ((_n(LEFT + hour * step + step / 2), HEIGHT - 8, f"{hour:02d}") for hour in range(0, 24, 2)),
    )
    return format_html(
        '<svg class="opens-by-hour" role="img" aria-label="Opens by hour ({})" xmlns="http://www.w3.org/2000/svg" '
        'width="{}" height="{}" viewBox="0 0 {} {}">'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text x="4" y="{}" font-size="10" fill="#666">{}</text><text x="4" y="{}" font-size="10" fill="#666">0</text>'
        "{}{}</svg>",
        zone, WIDTH, HEIGHT, WIDTH, HEIGHT,
        LEFT, HEIGHT - BOTTOM, WIDTH, HEIGHT - BOTTOM,
        TOP + 8, peak, HEIGHT - BOTTOM,
        bars, labels,
    )  # fmt: skip
