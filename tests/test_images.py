"""Images as users hold them (ImageFolder trees and CSV manifests), decoded once into the memory-mapped store."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from swagbench.bench.cli import main
from swagbench.bench.config import DataConfig
from swagbench.bench.dataset import load_dataset
from swagbench.bench.errors import DataError
from tests.conftest import the_run

SIZE = 12


def _image(path, mode, size, seed):
    """A random image of ``mode`` and ``size`` (w, h) saved at ``path`` (format from the suffix)."""
    rng = np.random.default_rng(seed)
    w, h = size
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, size=(h, w), dtype=np.uint16))  # mode I;16, saved as 16-bit PNG
    elif mode == "P":
        im = Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8), "RGB").convert("P")
    else:
        bands = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
        arr = rng.integers(0, 256, size=(h, w, bands), dtype=np.uint8)
        im = Image.fromarray(arr[..., 0] if bands == 1 else arr, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def _folder(root, per_class=6):
    """Three classes of PNG and JPEG images of mixed sizes and modes, plus a stray text file."""
    modes = ["RGB", "L", "RGBA", "P", "I;16", "RGB"]
    for k, name in enumerate(("cat", "dog", "emu")):
        for i in range(per_class):
            mode = modes[i % len(modes)]
            ext = ".jpg" if mode in ("RGB", "L") and i % 2 == 0 else ".png"
            _image(root / name / f"{i:02d}{ext}", mode, (SIZE + 3 * i, SIZE + 2 * k + i), seed=100 * k + i)
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def _known(root):
    """Images whose decoded pixels are known without decoding them: each mode at exactly SIZE x SIZE (lossless PNG,
    no resize), and two banded images that must be resized and centre-cropped. Returns {relative path: expected
    (3, SIZE, SIZE) uint8 array, or None for the banded ones (checked by their bands)}."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    grey = rng.integers(0, 256, size=(SIZE, SIZE), dtype=np.uint8)
    rgba = rng.integers(0, 256, size=(SIZE, SIZE, 4), dtype=np.uint8)
    index = rng.integers(0, 16, size=(SIZE, SIZE), dtype=np.uint8)
    palette = rng.integers(0, 256, size=(16, 3), dtype=np.uint8)
    deep = rng.integers(0, 65536, size=(SIZE, SIZE), dtype=np.uint16)
    paletted = Image.fromarray(index, "P")
    paletted.putpalette(palette.flatten().tolist())
    cases = {
        "a/rgb.png": (Image.fromarray(rgb, "RGB"), rgb),
        "a/grey.png": (Image.fromarray(grey, "L"), np.repeat(grey[..., None], 3, axis=2)),  # grey into 3 bands
        "a/rgba.png": (Image.fromarray(rgba, "RGBA"), rgba[..., :3]),  # alpha dropped
        "b/palette.png": (paletted, palette[index]),  # the palette's colours
        "b/deep.png": (Image.fromarray(deep), np.repeat(np.rint(deep / 257.0).astype(np.uint8)[..., None], 3, 2)),
    }
    for rel, (im, _) in cases.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        im.save(root / rel)
    # 4S x 2S and 2S x 4S in three bands (A | B B | C): halved to S on the short side, the centre square is band B
    for rel, axis in (("c/wide.png", 1), ("c/tall.png", 0)):
        bands = np.zeros((2 * SIZE, 4 * SIZE, 3) if axis else (4 * SIZE, 2 * SIZE, 3), dtype=np.uint8)
        idx = [slice(None)] * 3
        for (lo, hi), colour in zip(((0, 1), (1, 3), (3, 4)), ((250, 0, 0), (0, 200, 0), (0, 0, 150)), strict=True):
            idx[axis] = slice(lo * SIZE, hi * SIZE)
            bands[tuple(idx)] = colour
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(bands, "RGB").save(root / rel)
    expected = {rel: want.transpose(2, 0, 1) for rel, (_, want) in cases.items()}
    return expected | dict.fromkeys(("c/wide.png", "c/tall.png"))


def test_an_image_folder_decodes_to_known_pixels(tmp_path):
    """Every mode to RGB as its definition says (grey replicated, alpha dropped, palette looked up, 16-bit scaled to
    8), and the shorter side resized then the centre square kept, checked against pixels known without a decoder."""
    root = tmp_path / "known"
    expected = _known(root)
    ds = load_dataset(DataConfig(source=str(root), image_size=SIZE, decode_workers=2), tmp_path / "cache", print)
    by_path = {str(Path(p).relative_to(root)): ds.x[i] for i, p in enumerate(ds.paths)}
    assert sorted(by_path) == sorted(expected)
    for rel, want in expected.items():
        if want is not None:
            assert np.array_equal(by_path[rel], want), rel
    green = np.array([0, 200, 0], dtype=np.uint8).reshape(3, 1, 1)
    for rel in ("c/wide.png", "c/tall.png"):
        inner = by_path[rel][:, 1:-1, 1:-1]  # bilinear resampling may blend the outermost row or column
        assert (inner == green).all(), rel


def test_an_image_folder_of_mixed_sizes_and_modes_becomes_one_store(tmp_path):
    root = _folder(tmp_path / "pets")
    logs = []
    ds = load_dataset(DataConfig(source=str(root), image_size=SIZE, decode_workers=2), tmp_path / "cache", logs.append)
    assert ds.name == "pets" and ds.class_names == ["cat", "dog", "emu"] and ds.num_classes == 3
    assert ds.x.shape == (18, 3, SIZE, SIZE) and ds.x.dtype == np.uint8 and ds.true_labels is None
    assert ds.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6  # labels as given: no noise for your own images
    assert any("1 non-image files skipped" in line for line in logs)
    # batches are normalised with ImageNet's statistics by default
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(ds.batch([3, 0]), (ds.x[[3, 0]] / 255.0 - mean) / std, rtol=1e-5, atol=1e-6)


def test_grey_images_and_the_cache_is_reused_then_rebuilt_when_a_file_changes(tmp_path):
    root = _folder(tmp_path / "pets")
    config = DataConfig(source=str(root), image_size=SIZE, channels=1)
    logs = []
    first = load_dataset(config, tmp_path / "cache", logs.append)
    assert first.x.shape == (18, 1, SIZE, SIZE) and first.mean == [0.449]
    again = load_dataset(config, tmp_path / "cache", logs.append)
    assert again.store.folder == first.store.folder and sum("decoding" in line for line in logs) == 1
    _image(root / "dog" / "03.png", "RGB", (20, 20), seed=999)  # one file changes
    changed = load_dataset(config, tmp_path / "cache", logs.append)
    assert changed.store.folder != first.store.folder and sum("decoding" in line for line in logs) == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: (r / "a").mkdir(parents=True) or (r / "b").mkdir(), "holds no images"),
        (lambda r: _image(r / "only" / "x.png", "RGB", (9, 9), 1), "at least 2; found only 'only'"),
        (
            lambda r: (
                _image(r / "a" / "x.png", "RGB", (9, 9), 1),
                _image(r / "a" / "z.png", "RGB", (9, 9), 2),  # 2 per class: a class of 1 is refused before decoding
                _image(r / "b" / "w.png", "RGB", (9, 9), 3),
                (r / "b" / "y.jpg").write_bytes(b"\xff\xd8garbage"),
            ),
            "cannot decode image",
        ),
    ],
    ids=["empty class folder", "single class", "corrupt image"],
)
def test_bad_image_folders_are_one_clear_error(tmp_path, make, message):
    root = tmp_path / "imgs"
    root.mkdir()
    make(root)
    with pytest.raises(DataError, match=message) as err:
        load_dataset(DataConfig(source=str(root), image_size=SIZE, decode_workers=1), tmp_path / "cache")
    if "decode" in message:
        assert "y.jpg" in str(err.value)  # names the file
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # a failed decode leaves no partial store


def test_a_csv_manifest_with_true_labels(tmp_path):
    root = _folder(tmp_path / "pets")
    rows = [(f"pets/{c}/{i:02d}{'.jpg' if i == 0 else '.png'}", c, c) for c in ("cat", "dog") for i in range(4)]
    rows[1] = (rows[1][0], "dog", "cat")  # a known label error
    csv = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "label", "true_label"]).to_csv(csv, index=False)
    ds = load_dataset(DataConfig(source=str(csv), image_size=SIZE), tmp_path / "cache")
    assert ds.class_names == ["cat", "dog"] and ds.labels[1] == 1 and ds.true_labels[1] == 0
    assert ds.is_label_error.sum() == 1 and ds.paths[0] == str(root / "cat" / "00.jpg")


@pytest.mark.parametrize(
    "table, message",
    [
        (
            "path,label\npets/cat/00.jpg,cat\nmissing.png,dog\n",
            "1 listed image\\(s\\) do not exist, e.g. .*missing.png",
        ),
        ("path,label,true_label\npets/cat/00.jpg,cat,cat\npets/dog/00.jpg,dog,fox\n", "true_label 'fox' is not among"),
        ("file,label\npets/cat/00.jpg,cat\n", "lacks column\\(s\\) \\['path'\\]"),
        ("path,label\npets/cat/00.jpg,\n", "row 2 has an empty path or label"),
    ],
    ids=["missing path", "unknown true label", "no path column", "empty label"],
)
def test_bad_manifests_are_one_clear_error(tmp_path, table, message):
    _folder(tmp_path / "pets", per_class=2)
    csv = tmp_path / "m.csv"
    csv.write_text(table)
    with pytest.raises(DataError, match=message):
        load_dataset(DataConfig(source=str(csv), image_size=SIZE), tmp_path / "cache")


RUN = [
    "model=digits_cnn",
    "ensemble.folds=2",
    "ensemble.samples=2",
    "train.epochs=2",
    "train.swa_start=1",
    "train.batch_size=8",
    "threads=1",
    "batch_size=8",
    "data.noise_rate=0",
    "--backends",
    "eager",
]


@pytest.mark.e2e
def test_a_folder_run_equals_an_npz_run_of_the_same_pixels_and_writes_the_label_issues(tmp_path, capsys):
    root = _folder(tmp_path / "pets", per_class=8)
    args = [*RUN, f"data.image_size={SIZE}", f"cache_dir={tmp_path / 'cache'}"]
    assert main(["run", f"data.source={root}", "--results-dir", str(tmp_path / "a"), *args]) == 0
    out = capsys.readouterr().out
    folder_run = the_run(tmp_path / "a")
    ds = load_dataset(DataConfig(source=str(root), image_size=SIZE), tmp_path / "cache")
    x = ds.batch(slice(None))  # the same normalised pixels, as a user's float .npz
    np.savez(tmp_path / "pets.npz", x=x, y=ds.labels)
    assert main(["run", f"data.source={tmp_path / 'pets.npz'}", "--results-dir", str(tmp_path / "b"), *args]) == 0
    npz_run = the_run(tmp_path / "b")
    members = [np.load(r / "trials" / "00-eager-fp32" / "member_probs.npy") for r in (folder_run, npz_run)]
    assert np.array_equal(*members)

    # The job's output: every image ranked worst first, with path, given and suggested class names.
    table = pd.read_csv(folder_run / "label_issues.csv")
    issues = np.load(folder_run / "trials" / "00-eager-fp32" / "label_issues.npy")
    quality = np.load(folder_run / "trials" / "00-eager-fp32" / "label_quality.npy")
    assert len(table) == len(ds.labels) and table.label_quality.is_monotonic_increasing
    assert sorted(table.index[table.is_issue].map(table["index"])) == sorted(np.flatnonzero(issues))
    np.testing.assert_allclose(table.sort_values("index").label_quality, quality)
    first = table.iloc[0]
    assert first.path == ds.paths[first["index"]] and first.given_class == ds.class_names[first.given_label]
    assert f"label issues: {int(issues.sum())} found" in out and str(folder_run / "label_issues.csv") in out
    assert "label issues:" in (folder_run / "summary.md").read_text()
    assert 'id="label-issues"' in (folder_run / "report.html").read_text()
    # the run folder records the data store, never a copy of the data
    record = json.loads((folder_run / "data.json").read_text())
    assert record["store"] == str(ds.store.folder) and not (folder_run / "data.npz").exists()


@pytest.mark.e2e
def test_resume_with_changed_or_missing_data_is_refused(tmp_path, capsys):
    root = _folder(tmp_path / "pets", per_class=8)
    args = [*RUN, f"data.image_size={SIZE}", f"cache_dir={tmp_path / 'cache'}", "--results-dir", str(tmp_path / "r")]
    assert main(["run", f"data.source={root}", *args]) == 0
    run = the_run(tmp_path / "r")
    store = json.loads((run / "data.json").read_text())["store"]
    x = np.load(f"{store}/x.npy", mmap_mode="r+")
    x[0, 0, 0, 0] ^= 1  # one pixel of the stored data changes
    x.flush()
    del x
    capsys.readouterr()
    assert main(["run", "--resume", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "changed since the run was made" in err[0]
    import shutil

    shutil.rmtree(store)  # a cleared cache: the store is made again from data.source, the same bytes, and used
    assert main(["run", "--resume", str(run), "--retry-failed"]) == 0
    shutil.rmtree(store)
    _image(root / "dog" / "03.png", "RGB", (20, 20), seed=999)  # ... unless the images changed meanwhile
    capsys.readouterr()
    assert main(["run", "--resume", str(run)]) == 2
    assert "data.source now gives other data" in capsys.readouterr().err
    shutil.rmtree(root)  # or are gone
    assert main(["run", "--resume", str(run)]) == 2
    assert "is gone and cannot be made again" in capsys.readouterr().err


def test_fold_ids_from_a_manifest_column_follow_the_images(tmp_path):
    from swagbench.bench.record.folds import assign_folds

    _folder(tmp_path / "pets")
    rows = [(f"pets/{c}/{i:02d}.png", c, i % 2) for c in ("cat", "dog") for i in range(1, 5)]
    csv = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "label", "fold"]).to_csv(csv, index=False)
    ds = load_dataset(DataConfig(source=str(csv), image_size=SIZE), tmp_path / "cache")
    fold_of = assign_folds("fold", ds, 2, 0, str(csv))
    expected = {str(tmp_path / p): f for p, _, f in rows}
    assert fold_of.tolist() == [expected[p] for p in ds.paths]
    with pytest.raises(DataError, match="has no column 'split'"):
        assign_folds("split", ds, 2, 0, str(csv))
