"""A full disk or an output folder that cannot be written: a clear error naming the path, no partial file."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import torch
from PIL import Image

from classification import train as cls_train
from nsrom import files
from nsrom.errors import OutputError
from nsrom.files import (TEMP_MARKER, atomic_write_text, ensure_writable_dir, leftover_temporaries,
                         remove_leftover_temporaries)
from nsrom.images import write_label
from nsrom.training_state import load_state, save_state
from segmentation import main as seg_main
from segmentation.libs.utils.config import CONFIG_DIR
from tools import draw_framework

pytestmark = pytest.mark.usefixtures("single_thread")


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_writing_a_png_leaves_nothing_under_the_final_name(tmp_path, monkeypatch):
    real_save = Image.Image.save

    def half_then_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)
        with open(fp, "r+b") as f:
            f.truncate(10)  # what reached the disk
        disk_full()

    monkeypatch.setattr(Image.Image, "save", half_then_full)
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path / 'a.png'}: no space left on the device"):
        write_label(tmp_path / "a.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint_recent.pth"
    save_state(path, {"step": 1, "w": torch.ones(3)})

    class FullDisk:
        def __init__(self, name, mode):
            self.file = open(name, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(bytes(data[: len(data) // 2]))
            disk_full()

    monkeypatch.setattr(files, "open", FullDisk, raising=False)
    with pytest.raises(OutputError, match="checkpoint_recent.pth: no space left on the device; free some space"):
        save_state(path, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert load_state(path)["step"] == 1 and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_unwritable_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(files.tempfile, "mkstemp", lambda **kw: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, "Permission denied")))
    with pytest.raises(OutputError, match=rf"cannot write {tmp_path / 'out'}: permission denied; fix the permissions"):
        ensure_writable_dir(tmp_path / "out")


def test_a_file_where_the_output_folder_should_be_is_named(tmp_path):
    """Not "File exists; fix the permissions": the message names the file that stands in the way."""
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    for folder in (blocker, blocker / "deeper"):
        with pytest.raises(OutputError, match=rf"cannot write {folder / 'x.txt'}: {blocker} is a file, not a folder;") \
                as exc:
            atomic_write_text(folder / "x.txt", "x")
        assert "File exists" not in str(exc.value) and "permissions" not in str(exc.value)
        with pytest.raises(OutputError, match=rf"cannot write {folder}: {blocker} is a file, not a folder;"):
            ensure_writable_dir(folder)
    assert blocker.read_text() == "not a folder"


def test_draw_framework_reports_an_unwritable_output_in_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "somefile"
    blocker.write_text("not a folder")
    (tmp_path / "a_folder").mkdir()
    cases = [(blocker / "x.png", f"{blocker} is a file, not a folder"),
             (tmp_path / "a_folder", "it is a folder")]
    for out, reason in cases:
        with pytest.raises(SystemExit) as exc:
            draw_framework.main(["--out", str(out)])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith(f"error: cannot write {out}: {reason}; ")
        assert err.count("\n") == 1 and "Traceback" not in err
    monkeypatch.setattr(files, "_create_temporary", lambda path: (_ for _ in ()).throw(
        PermissionError(errno.EACCES, "Permission denied")))
    with pytest.raises(SystemExit) as exc:
        draw_framework.main(["--out", str(tmp_path / "fig.png")])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write {tmp_path / 'fig.png'}: permission denied;")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder", "somefile"]


def test_stages_stop_with_a_message_when_the_output_folder_cannot_be_made(synthetic_root, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as exc:
        cls_train.main(["--data-root", str(synthetic_root.root), "--runs-dir", str(blocker / "runs"),
                        "--no-pretrained", "--device", "cpu", "--num-workers", "0", "--no-check-data"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"cannot write {blocker / 'runs'}" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exc:
        seg_main.main(["train", "-c", str(CONFIG_DIR / "demo.yaml"), "--cpu", "--fully-supervised", "--no-check-data",
                       "--set", f"DATASET.ROOT={synthetic_root.root}", "--set", f"EXP.OUTPUT_DIR={blocker / 'seg'}"])
    assert exc.value.code == 2
    assert f"cannot write {blocker / 'seg'}" in capsys.readouterr().err


def test_leftover_temporaries_of_a_killed_writer(tmp_path):
    (tmp_path / f".checkpoint_10{TEMP_MARKER}x1y2.pth").write_bytes(b"half")
    (tmp_path / "checkpoint_10.pth").write_bytes(b"whole")
    assert [p.name for p in leftover_temporaries(tmp_path)] == [f".checkpoint_10{TEMP_MARKER}x1y2.pth"]
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / f".a_0{TEMP_MARKER}k3.png").write_bytes(b"half")
    assert remove_leftover_temporaries(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_10.pth", "maps"]
    assert remove_leftover_temporaries(tmp_path, recursive=True) == 1 and not list((tmp_path / "maps").iterdir())
