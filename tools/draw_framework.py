"""Draw framework.png: the NSROM pipeline, its stages and the data between them.

    python tools/draw_framework.py [--out framework.png]

Drawn with Pillow alone so that it can be regenerated anywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from nsrom.errors import exit_on_error
from nsrom.files import atomic_path

W, H = 1700, 980
STAGE = (222, 235, 247)  # stage boxes (computation)
DATA = (255, 243, 214)  # data boxes (files passed between stages)
SAL = (226, 240, 217)  # saliency, the external cue
KEY = (248, 215, 215)  # the two contributions: POM and NSRM
LINE = (40, 40, 40)

# name: (x, y, w, h, fill, text)
BOXES = {
    "img": (30, 90, 210, 90, DATA, "train_aug images\n+ image-level labels"),
    "s1": (300, 60, 300, 150, STAGE, "Stage 1: OAA classifier\nVGG16 (dilated) + GloRe\nmulti-label soft margin\nonline attention accumulation"),
    "acc": (660, 60, 210, 70, DATA, "accumulated maps\n(32x32, per image, class)"),
    "cam": (660, 150, 210, 60, DATA, "CAMs (stage 1b)"),
    "s2": (930, 45, 290, 110, STAGE, "Stage 2: integral attention\nmodel (IAM), trained on\nthe accumulated maps"),
    "oacam": (1290, 70, 180, 60, DATA, "OA-CAMs"),
    "sal": (30, 330, 210, 80, SAL, "saliency maps\n(pre-computed)"),
    "s3": (470, 290, 560, 170, STAGE, "Stage 3: gen_label.py\nscores: 1 - S/255, OA-CAMs;  cut < 0.3;\nconflicts (> 0.9 twice) -> ignore;\nuncertain background (T >= 32) -> ignore"),
    "pom": (1080, 300, 330, 150, KEY, "Potential object mining (POM)\nbackground pixels where a CAM\nexceeds its class threshold\n-> ignore"),
    "pl": (1480, 340, 190, 70, DATA, "pseudo labels"),
    "s4": (1340, 560, 330, 110, STAGE, "Stage 4: DeepLab-v2 ResNet-101\nMSC, round 1 (train)"),
    "s5": (920, 560, 340, 110, STAGE, "Stage 5: trainaug_pred.py\npredict train_aug + dense CRF"),
    "pred": (640, 580, 200, 70, DATA, "predictions P"),
    "nsrm": (230, 540, 340, 150, KEY, "Stage 6: non-salient region\nmasking (NSRM)\nfill from pseudo labels; keep\n(P | S) dilated 30x30, rest ignore"),
    "ml": (30, 790, 210, 70, DATA, "masked labels"),
    "s7": (330, 770, 420, 110, STAGE, "Stage 7: DeepLab-v2 round 2\ntrain, test, dense CRF"),
    "out": (830, 790, 260, 70, DATA, "segmentation\n(70.4 mIoU VOC val)"),
}

# (from, to, from side, to side, label)
ARROWS = [
    ("img", "s1", "r", "l", ""),
    ("s1", "acc", "r", "l", ""),
    ("s1", "cam", "r", "l", ""),
    ("acc", "s2", "r", "l", "targets"),
    ("s2", "oacam", "r", "l", ""),
    ("oacam", "s3", "b", "t", ""),
    ("cam", "pom", "b", "t", "CAMs"),
    ("sal", "s3", "r", "l", "S"),
    ("s3", "pom", "r", "l", ""),
    ("pom", "pl", "r", "l", ""),
    ("pl", "s4", "b", "t", ""),
    ("s4", "s5", "l", "r", "model"),
    ("s5", "pred", "l", "r", ""),
    ("pred", "nsrm", "l", "r", ""),
    ("pl", "nsrm", "b", "t", ""),
    ("sal", "nsrm", "b", "t", "S"),
    ("nsrm", "ml", "b", "t", ""),
    ("ml", "s7", "r", "l", ""),
    ("s7", "out", "r", "l", ""),
]


def _anchor(name: str, side: str) -> tuple[float, float]:
    x, y, w, h = BOXES[name][:4]
    return {"l": (x, y + h / 2), "r": (x + w, y + h / 2), "t": (x + w / 2, y), "b": (x + w / 2, y + h)}[side]


def _arrow(draw: ImageDraw.ImageDraw, a, b, font, label: str) -> None:
    draw.line([a, b], fill=LINE, width=3)
    dx, dy = b[0] - a[0], b[1] - a[1]
    norm = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / norm, dy / norm
    tip, size = b, 14
    left = (tip[0] - size * ux + size * 0.5 * uy, tip[1] - size * uy - size * 0.5 * ux)
    right = (tip[0] - size * ux - size * 0.5 * uy, tip[1] - size * uy + size * 0.5 * ux)
    draw.polygon([tip, left, right], fill=LINE)
    if label:
        mx, my = (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
        draw.text((mx + 6, my - 22), label, fill=(90, 90, 90), font=font)


def draw(out: Path) -> None:
    """Render the diagram to ``out`` (PNG)."""
    img = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=17)
    title = ImageFont.load_default(size=26)
    draw.text((30, 12), "NSROM: non-salient region object mining for weakly supervised segmentation",
              fill=LINE, font=title)
    for x, y, w, h, fill, text in BOXES.values():
        draw.rounded_rectangle([x, y, x + w, y + h], radius=12, fill=fill, outline=LINE, width=2)
        draw.multiline_text((x + w / 2, y + h / 2), text, fill=LINE, font=font, anchor="mm", align="center", spacing=5)
    for src, dst, s_side, d_side, label in ARROWS:
        _arrow(draw, _anchor(src, s_side), _anchor(dst, d_side), font, label)
    legend = [(STAGE, "computation"), (DATA, "data passed between stages"), (SAL, "saliency (external cue)"),
              (KEY, "NSROM's contributions")]
    for i, (fill, text) in enumerate(legend):
        x = 1150 + (i % 2) * 270
        y = 880 + (i // 2) * 40
        draw.rectangle([x, y, x + 26, y + 22], fill=fill, outline=LINE)
        draw.text((x + 36, y + 1), text, fill=LINE, font=font)
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG")


@exit_on_error
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "framework.png"))
    draw(Path(p.parse_args(argv).out))


if __name__ == "__main__":
    main()
