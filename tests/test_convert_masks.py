"""Colour-coded masks (nsrom.colour_masks, tools/convert_masks.py): every colour to its index, nothing guessed."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nsrom.classes import read_class_names, voc_palette
from nsrom.colour_masks import VOID_COLOUR, ColourMap, colours_to_indices
from nsrom.errors import DataError
from nsrom.images import read_label
from tools import convert_masks

LABELMAP = """# label:color_rgb:parts:actions
background:0,0,0::
cat:255,0,0::
dog:0,255,0::
"""


def test_voc_colours_give_their_palette_indices_and_void_is_255():
    palette = voc_palette()
    label = np.array([[0, 1, 2], [15, 20, 255]], dtype=np.uint8)
    assert tuple(palette[255]) == VOID_COLOUR == (224, 224, 192)
    assert np.array_equal(colours_to_indices(palette[label], ColourMap.voc()), label)


def test_a_labelmap_gives_indices_in_line_order_and_names(tmp_path):
    path = tmp_path / "labelmap.txt"
    path.write_text(LABELMAP)
    colours = ColourMap.from_labelmap(path)
    assert colours.names == ("background", "cat", "dog")
    rgb = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [224, 224, 192]]], dtype=np.uint8)
    assert colours_to_indices(rgb, colours).tolist() == [[0, 1], [2, 255]]


@pytest.mark.parametrize("text, message", [
    ("background:0,0,0::\ncat:255,0::\n", r"labelmap.txt:2: expected 'name:r,g,b::'"),
    ("background:0,0,0::\ncat:0,0,0::\n", r"labelmap.txt:2: colour \(0, 0, 0\) is also class 'background'"),
    ("background:0,0,0::\n", "needs background and at least one class"),
])
def test_a_bad_labelmap_is_named_with_its_line(tmp_path, text, message):
    path = tmp_path / "labelmap.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        ColourMap.from_labelmap(path)


def test_an_unknown_colour_is_an_error_with_its_pixel_count():
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, :2] = (1, 2, 3)
    with pytest.raises(DataError, match=r"mask x.png has colours that no class has: \(1, 2, 3\) in 2 pixels"):
        colours_to_indices(rgb, ColourMap.voc(), "mask x.png")


def test_the_tool_converts_rgb_masks_keeps_index_masks_and_fails_only_the_bad_file(tmp_path, capsys):
    src, out = tmp_path / "rgb", tmp_path / "masks"
    src.mkdir()
    (tmp_path / "labelmap.txt").write_text(LABELMAP)
    label = np.array([[0, 1], [2, 255]], dtype=np.uint8)
    rgb = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [224, 224, 192]]], dtype=np.uint8)
    Image.fromarray(rgb).save(src / "a.png")
    Image.fromarray(np.dstack([rgb, np.full((2, 2), 255, np.uint8)])).save(src / "b.png")  # RGBA
    Image.fromarray(label, mode="L").save(src / "c.png")  # already indices
    bad = rgb.copy()
    bad[0, 0] = (9, 9, 9)
    Image.fromarray(bad).save(src / "d.png")
    argv = [str(src), str(out), "--colours", str(tmp_path / "labelmap.txt"),
            "--labels-out", str(tmp_path / "labels.txt")]
    assert convert_masks.main(argv) == 1
    printed = capsys.readouterr().out
    assert "4 masks of" in printed and "3 written, 0 exists, 1 failed" in printed
    assert f"mask {src / 'd.png'} has colours that no class has: (9, 9, 9) in 1 pixels" in printed
    for name in ("a", "b", "c"):
        assert np.array_equal(read_label(out / f"{name}.png"), label)
        assert Image.open(out / f"{name}.png").mode == "P"
    assert not (out / "d.png").exists()
    assert read_class_names(tmp_path / "labels.txt") == ["background", "cat", "dog"]
    Image.fromarray(rgb).save(src / "d.png")  # fixed: the others are kept, d is written
    assert convert_masks.main(argv) == 0
    assert "1 written, 3 exists, 0 failed" in capsys.readouterr().out


def test_the_tool_refuses_to_write_over_its_source_or_another_labels_txt(tmp_path, capsys):
    src = tmp_path / "rgb"
    src.mkdir()
    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(src / "a.png")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(src)])
    assert "is SRC" in capsys.readouterr().err
    (tmp_path / "labelmap.txt").write_text(LABELMAP)
    (tmp_path / "labels.txt").write_text("0 background\n1 bird\n")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "out"), "--colours", str(tmp_path / "labelmap.txt"),
                            "--labels-out", str(tmp_path / "labels.txt")])
    assert "exists with other classes than the labelmap's" in capsys.readouterr().err
    (tmp_path / "labels.txt").write_text("0 background\n1 dog\n2 cat\n")  # the labelmap's classes, reversed
    with pytest.raises(SystemExit):  # the same classes, reversed: said so, and what to do
        convert_masks.main([str(src), str(tmp_path / "out"), "--colours", str(tmp_path / "labelmap.txt"),
                            "--labels-out", str(tmp_path / "labels.txt")])
    err = capsys.readouterr().err
    assert "the same classes in another order" in err and "remove" in err and "leave out" not in err
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "out"), "--labels-out", str(tmp_path / "l2.txt")])
    assert "needs --colours labelmap.txt" in capsys.readouterr().err


def test_the_data_check_and_the_label_reader_point_an_rgb_mask_to_the_tool(synthetic_root, tmp_path):
    import shutil

    from nsrom.data import DataLayout
    from nsrom.data_check import check_dataset

    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    mask = layout.mask_path(layout.ids("val")[0])
    Image.open(mask).convert("RGB").save(mask)
    [error] = check_dataset(layout, workers=1).errors
    assert error.path == str(mask) and error.message.endswith("(colour-coded masks: tools/convert_masks.py "
                                                              "converts them)")
    with pytest.raises(DataError, match="has mode RGB; .*tools/convert_masks.py"):
        read_label(mask)
    assert np.array_equal(colours_to_indices(np.asarray(Image.open(mask)), ColourMap.voc()),
                          read_label(synthetic_root.mask_path(layout.ids("val")[0])))


def test_voc_palette_colours_beyond_the_classes_are_no_class():
    rgb = voc_palette()[np.array([[0, 64]])]  # (32, 0, 0): a blurred aeroplane edge, palette entry 64
    with pytest.raises(DataError, match=r"\(32, 0, 0\) in 1 pixels"):
        colours_to_indices(rgb, ColourMap.voc())
    assert colours_to_indices(voc_palette()[np.array([[0, 5]])], ColourMap.voc(5)).tolist() == [[0, 5]]
    with pytest.raises(DataError, match=r"\(128, 0, 128\) in 1 pixels"):  # class 5 of VOC, not of a 4-class set
        colours_to_indices(voc_palette()[np.array([[0, 5]])], ColourMap.voc(4))


def test_the_tool_reads_capital_png_names_and_names_bad_arguments_in_one_line(tmp_path, capsys):
    src = tmp_path / "rgb"
    src.mkdir()
    Image.fromarray(voc_palette()[np.array([[0, 1]])]).save(src / "a.PNG")
    assert convert_masks.main([str(src), str(tmp_path / "out")]) == 0
    assert read_label(tmp_path / "out" / "a.png").tolist() == [[0, 1]]
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "file")])
    assert "is a file, not a folder" in capsys.readouterr().err
    (tmp_path / "labelmap.txt").write_bytes(b"background:0,0,0::\n\xff\xfe:1,1,1::\n")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "out2"), "--colours", str(tmp_path / "labelmap.txt")])
    err = capsys.readouterr().err
    assert "labelmap.txt is not UTF-8 text" in err and "save it as UTF-8" in err
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "out3"), "--num-classes", "0"])
    assert capsys.readouterr().err == "error: --num-classes must be 1..254, got 0\n"


def test_an_index_mask_with_values_above_the_classes_fails_instead_of_being_copied(tmp_path, capsys):
    """A grey 0/40 mask (or any value above the classes but 255) is not silently copied: its file fails."""
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.array([[0, 40]], np.uint8), mode="L").save(src / "a.png")
    Image.fromarray(np.array([[0, 3, 255]], np.uint8), mode="L").save(src / "b.png")
    assert convert_masks.main([str(src), str(out), "--num-classes", "3"]) == 1
    printed = capsys.readouterr().out
    assert "1 written, 0 exists, 1 failed" in printed
    assert f"mask {src / 'a.png'} is a grey PNG whose values include 40: not class indices 0..3 or 255" in printed
    assert not (out / "a.png").exists() and read_label(out / "b.png").tolist() == [[0, 3, 255]]


def test_a_colour_mask_resaved_with_its_own_palette_is_refused_and_converted_by_its_colours(synthetic_root,
                                                                                           tmp_path, capsys):
    """Quantising a VOC colour mask to a palette PNG keeps the colours and renumbers them: read as
    indices, a cat (8) and a person (15) would become classes 1 and 2. The reader and the data check
    refuse it, naming the file; the tool converts it through its colours. Palettes of other colours
    (a tool's own colours, a grey ramp) stay indices."""
    import shutil

    from nsrom.data import DataLayout
    from nsrom.data_check import check_dataset

    truth = np.zeros((20, 20), np.uint8)
    truth[5:10, 5:10], truth[12:18, 2:8] = 15, 8
    rgb = voc_palette(256)[truth]
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=3).save(tmp_path / "quant.png")
    raw = np.asarray(Image.open(tmp_path / "quant.png"))
    assert sorted(np.unique(raw).tolist()) == [0, 1, 2]  # what a reader of indices alone would take as classes
    with pytest.raises(DataError, match=r"quant.png is a palette PNG whose palette gives index \d the VOC colour "
                                        r"of index (8|15) .*tools/convert_masks.py"):
        read_label(tmp_path / "quant.png")
    out = tmp_path / "out"
    assert convert_masks.main([str(tmp_path), str(out)]) == 0
    assert np.array_equal(read_label(out / "quant.png"), truth)

    own = Image.fromarray(truth, mode="P")  # indices drawn in colours of the tool's own
    own.putpalette([c for i in range(256) for c in (i * 7 % 256, 255 - i, 30)])
    own.save(tmp_path / "own.png")
    grey = Image.fromarray(truth, mode="P")
    grey.putpalette([c for i in range(256) for c in (i, i, i)])
    grey.save(tmp_path / "grey.png")
    for name in ("own.png", "grey.png"):
        assert np.array_equal(read_label(tmp_path / name), truth)

    layout = DataLayout(tmp_path / "data")
    shutil.copytree(synthetic_root.root, layout.root)
    mask = layout.mask_path(layout.ids("val")[0])
    voc = read_label(mask)
    Image.fromarray(voc_palette(256)[voc]).convert("P", palette=Image.Palette.ADAPTIVE).save(mask)
    [error] = check_dataset(layout, workers=1).errors
    assert error.path == str(mask) and "whose palette gives index" in error.message \
        and error.message.endswith("(colour-coded masks: tools/convert_masks.py converts them)")


def test_an_object_mask_two_masks_of_one_id_and_an_out_under_a_file_are_refused(tmp_path, capsys):
    """A 0/255 object mask had been copied (its object read as 'ignore'), x.PNG beside x.png had silently
    replaced it, and OUT under a file had ended in NotADirectoryError."""
    src = tmp_path / "src"
    src.mkdir()
    binary = np.zeros((6, 6), np.uint8)
    binary[1:4, 1:4] = 255
    Image.fromarray(binary).save(src / "obj.png")
    assert convert_masks.main([str(src), str(tmp_path / "out")]) == 1
    assert f"mask {src / 'obj.png'} holds only 0 and 255: an object mask" in capsys.readouterr().out
    assert not (tmp_path / "out" / "obj.png").exists()
    Image.fromarray(np.zeros((6, 6), np.uint8)).save(src / "obj.PNG")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "out2")])
    assert "would both be written as" in capsys.readouterr().err
    (src / "obj.PNG").unlink()
    (tmp_path / "afile").write_text("")
    with pytest.raises(SystemExit):
        convert_masks.main([str(src), str(tmp_path / "afile" / "sub")])
    err = capsys.readouterr().err
    assert "afile is a file, not a folder" in err and "Traceback" not in err


def test_a_class_named_twice_is_refused_in_a_labelmap_and_in_labels_txt(tmp_path):
    (tmp_path / "labelmap.txt").write_text("background:0,0,0::\ncat:128,0,0::\ncat:0,128,0::\n")
    with pytest.raises(DataError, match=r"labelmap.txt:3: class 'cat' is also line 2's"):
        ColourMap.from_labelmap(tmp_path / "labelmap.txt")
    (tmp_path / "labels.txt").write_text("0 background\n1 cat\n2 cat\n")
    with pytest.raises(DataError, match=r"labels.txt:3: class 'cat' is also index 1"):
        read_class_names(tmp_path / "labels.txt")
