"""Draw the integration's brand icon (256×256 PNG): a pack of cells with a balancing arrow.

Run inside the project's environment (Pillow ships with Home Assistant):
    bash -c 'source scripts/_env.sh; daly_exec python scripts/make_icon.py'
"""

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
OUT = Path(__file__).resolve().parents[1] / "custom_components/daly_active_balance/brand/icon.png"


def draw() -> Image.Image:
    scale = 4  # draw large, then shrink for smooth edges
    s = SIZE * scale
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    ink = (30, 41, 59, 255)
    d.rounded_rectangle(
        (40 * scale, 70 * scale, 216 * scale, 222 * scale), radius=22 * scale, outline=ink, width=10 * scale
    )
    d.rounded_rectangle((104 * scale, 52 * scale, 152 * scale, 72 * scale), radius=6 * scale, fill=ink)
    levels = (0.78, 0.62, 0.70, 0.86)
    colours = ((34, 197, 94, 255), (250, 204, 21, 255), (34, 197, 94, 255), (34, 197, 94, 255))
    left, bottom, top = 60, 204, 92
    width, gap = 30, 10
    for i, (level, colour) in enumerate(zip(levels, colours, strict=True)):
        x0 = left + i * (width + gap)
        y0 = bottom - (bottom - top) * level
        d.rounded_rectangle(
            (x0 * scale, y0 * scale, (x0 + width) * scale, bottom * scale), radius=5 * scale, fill=colour
        )
    # Two-headed arrow: charge moves from the fullest cell to the emptiest.
    y = 30
    d.line((70 * scale, y * scale, 186 * scale, y * scale), fill=(14, 116, 144, 255), width=9 * scale)
    for tip, direction in ((62, 1), (194, -1)):
        d.polygon(
            [
                (tip * scale, y * scale),
                ((tip + 20 * direction) * scale, (y - 13) * scale),
                ((tip + 20 * direction) * scale, (y + 13) * scale),
            ],
            fill=(14, 116, 144, 255),
        )
    return img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    draw().save(OUT, optimize=True)
    print(OUT)
