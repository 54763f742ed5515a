"""Issue 14: every CLI failure is one readable line naming the problem and the fix."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ptheta import data
from ptheta.cli import cli, common
from ptheta.data import images
from ptheta.errors import DataError


def _run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _fails(*args: str, match: str | tuple[str, ...]):
    """``ptheta ARGS`` exits with status 2 and one line that says each of ``match``."""
    result = _run(*args)
    assert result.exit_code == 2, result.output
    for text in (match,) if isinstance(match, str) else match:
        assert text in result.output, result.output
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def ind_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ind"
    assert _run("fit", "independent", "--data", "digits-binary", "--out", str(out)).exit_code == 0
    return out


@pytest.fixture
def points(tmp_path):
    path = tmp_path / "points.npy"
    np.save(path, np.random.default_rng(0).normal(size=(30, 2)))
    return path


# --------------------------------------------------------------------------- 7: markup
def test_a_closing_markup_tag_in_a_path_is_printed_not_interpreted(tmp_path):
    out = _fails("fit", "gmm", "--data", "no/such/x[/x].npy", "--out", str(tmp_path / "r"),
                 match="x[/x].npy")  # fmt: skip
    assert len(out.strip().splitlines()) == 1


@pytest.mark.parametrize("value", ["[a]", "[red]", "[bold red]x[/]"])
def test_markup_like_values_stay_in_the_message(value, tmp_path):
    _fails("fit", "made", "--data", "digits-binary", "--set", f"hidden={value}",
           "--out", str(tmp_path / "r"), match=f"got {value!r}")  # fmt: skip


def test_warnings_and_tables_print_user_text_verbatim(capsys, ind_run, tmp_path):
    common._show_warning("file a[/x] has [red]odd[/red] values", UserWarning, "f.py", 1)
    assert "file a[/x] has [red]odd[/red] values" in capsys.readouterr().err
    run = tmp_path / "run[red]"
    shutil.copytree(ind_run, run)
    out = tmp_path / "s[/x].npy"
    result = _run("sample", str(run), "-n", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "run[red]" in result.output and "s[/x].npy" in result.output.replace("\n", "")
    assert np.load(out).shape == (3, 64)


# --------------------------------------------------------------------------- 8: tracebacks
def test_negative_seeds_are_refused_by_the_parser(ind_run, points, tmp_path):
    _fails("fit", "gmm", "--data", str(points), "--data-seed", "-1", "--out", str(tmp_path / "r"),
           match=("--data-seed", "-1"))  # fmt: skip
    with pytest.raises(DataError, match="seed must be an integer >= 0"):
        data.load(str(points), seed=-1)
    _fails("sample", str(ind_run), "--seed", "-1", "--out", str(tmp_path / "s.npy"),
           match=("--seed", "-1"))  # fmt: skip
    _fails("impute", str(ind_run), "--in", str(points), "--out", str(tmp_path / "i.npy"),
           "--seed", "-5", match="--seed")  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
            "memory: you tried to allocate 40000000000 bytes. Error code 12 (Cannot allocate "
            "memory)"
        ),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 37.25 GiB."),
    ],
    ids=["cpu", "cuda"],
)
def test_a_torch_allocation_failure_is_one_line(monkeypatch, tmp_path, error):
    def fit_run(*args, **kwargs):
        raise error

    monkeypatch.setattr("ptheta.runs.fitting.fit_run", fit_run)  # imported when fit runs
    out = _fails("fit", "made", "--data", "digits-binary", "--set", "hidden=[100000,100000]",
                 "--out", str(tmp_path / "r"), match=("out of memory", "hidden"))  # fmt: skip
    assert len(out.strip().splitlines()) == 1


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch, tmp_path):
    def fit_run(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("ptheta.runs.fitting.fit_run", fit_run)  # imported when fit runs
    with pytest.raises(RuntimeError, match="a bug"):
        _run("fit", "made", "--data", "digits-binary", "--out", str(tmp_path / "r"))


# --------------------------------------------------------------------------- 9: messages
def test_random_bytes_named_npy_are_not_a_valid_npy_file(tmp_path):
    path = tmp_path / "noise.npy"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(DataError, match=r"not a valid \.npy file") as info:
        data.load(str(path))
    assert "allow_pickle" not in str(info.value) and "pickle.load" not in str(info.value)
    out = _fails("fit", "gmm", "--data", str(path), "--out", str(tmp_path / "r"),
                 match="not a valid .npy file")  # fmt: skip
    assert "allow_pickle" not in out


def _header(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def test_an_npy_header_claiming_an_impossible_shape_says_so(tmp_path):
    path = tmp_path / "huge.npy"
    path.write_bytes(_header((10**11, 2)) + bytes(64))
    with pytest.raises(DataError, match="corrupted") as info:
        data.load(str(path))
    assert "(100000000000, 2)" in str(info.value) and "fewer samples" not in str(info.value)
    # the same inside an .npz archive
    archive = tmp_path / "huge.npz"
    np.savez(archive, x=np.zeros((4, 2)))
    import zipfile

    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("x.npy", _header((10**11, 2)) + bytes(64))
    with pytest.raises(DataError, match="corrupted"):
        data.load(str(archive))


@pytest.mark.parametrize("shape", [(30,), (30, 2)])
def test_structured_arrays_are_refused_for_their_dtype(tmp_path, shape):
    path = tmp_path / "records.npy"
    np.save(path, np.zeros(shape, dtype=[("a", "<f8"), ("b", "<i4")]))
    with pytest.raises(DataError, match="structured") as info:
        data.load(str(path))
    assert "shape" not in str(info.value).split(";")[0]
    with pytest.raises(DataError, match="structured"):
        data.from_arrays(np.zeros(shape, dtype=[("a", "<f8"), ("b", "<i4")]))


def test_image_size_is_bounded_with_a_clear_range(tmp_path):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((4, 4), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    _fails("fit", "independent", "--data", str(folder), "--image-size", "100000",
           "--out", str(tmp_path / "r"), match=("image_size", "between 1 and 1024"))  # fmt: skip
    assert f"at most {images.MAX_IMAGE_SIZE})" in " ".join(_run("fit", "--help").output.split())
    with pytest.raises(DataError, match="between 1 and 1024"):
        data.load(str(folder), image_size=100000)


def test_an_image_error_without_text_still_gives_a_reason(tmp_path, monkeypatch):
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(np.full((4, 4), 60 * i, dtype=np.uint8)).save(folder / f"{i}.png")

    def resize(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Image.Image, "resize", resize)
    with pytest.raises(DataError, match=r"MemoryError|out of memory"):
        data.load(str(folder), image_size=8)


def test_ctrl_c_in_explore_says_the_explorer_stopped(monkeypatch):
    def serve(**kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("ptheta.explorer.server.serve", serve)
    result = _run("explore", "--no-browser")
    assert "explorer stopped" in result.output
    assert "--resume" not in result.output and "Traceback" not in result.output


def test_values_whose_squares_overflow_are_refused_at_load(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("a,b\n" + "".join(f"{1e308 if i % 2 else i},{i % 3}\n" for i in range(30)))
    with pytest.raises(DataError, match="rescale"):
        data.load(str(path))
    for kind in ("categorical", "continuous"):
        _fails("fit", "independent", "--data", str(path), "--kind", kind,
               "--out", str(tmp_path / "r"), match="rescale")  # fmt: skip


# --------------------------------------------------------------------------- 11: sample -n
def test_sample_refuses_more_samples_than_memory_allows(ind_run, tmp_path):
    # 64 values of 8 bytes a sample: 1 GiB holds 2,097,152 samples
    _fails("sample", str(ind_run), "-n", "1000000000", "--out", str(tmp_path / "s.npy"),
           match=("-n 2097152", "GiB"))  # fmt: skip
    assert not (tmp_path / "s.npy").exists()
    assert "GiB" in _run("sample", "--help").output


def test_sample_refuses_a_draw_estimated_to_take_too_long(tmp_path):
    run_dir = tmp_path / "made"
    fitted = _run("fit", "made", "--data", "digits-binary", "--set", "hidden=8", "--set",
                  "epochs=1", "--set", "device=cpu", "--out", str(run_dir), "--quiet")  # fmt: skip
    assert fitted.exit_code == 0, fitted.output
    out = _fails("sample", str(run_dir), "-n", "2000000", "--time-limit", "0.01",
                 "--out", str(tmp_path / "s.npy"), match=("--time-limit", "-n "))  # fmt: skip
    assert not (tmp_path / "s.npy").exists()
    assert "second" in out or "minute" in out or "hour" in out
    assert "--time-limit" in _run("sample", "--help").output


# --------------------------------------------------------------------------- interruptions
@pytest.mark.parametrize(
    ("target", "args", "says"),
    [
        ("ptheta.runs.fitting.fit_run", ["fit", "independent", "--data", "digits-binary"],
         "--resume finishes it"),
        ("ptheta.eval.compare.compare", ["compare", "--data", "digits-binary"],
         "run the same command again"),
    ],
)  # fmt: skip
def test_ctrl_c_says_what_finishes_the_interrupted_command(
    monkeypatch, tmp_path, target, args, says
):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(target, interrupted)
    out = _fails(*args, "--out", str(tmp_path / "o"), match=("interrupted", says))
    assert "--resume" not in out or args[0] == "fit"  # compare has no --resume
