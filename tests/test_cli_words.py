"""Help and messages in the user's words, and config files that say what is wrong with them
(issue 15: "Help and messages", "Config files")."""
from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

import pytest

from helpers import SAMPLES, copy_samples, featx, featx_inprocess, ok, featx_subprocess

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = {"astronaut.png": "astronaut.png", "chelsea.png": "chelsea.png", "coffee.jpg": "coffee.jpg",
          "rocket.jpg": "rocket.jpg", "camera.png": "camera.png"}  # five photos, four sizes


def out(r) -> str:
    return r.stdout.decode()


def words(r) -> str:
    """stdout with its line wrapping undone."""
    return " ".join(r.stdout.decode().split())


def err(r) -> str:
    return r.stderr.decode()


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return copy_samples(tmp_path / "photos", PHOTOS)


# ---------------------------------------------------------------------------
# featx info: plain text, the extractor's parameters as options


def test_docstring_markup_becomes_plain_text():
    from featx.doctext import plain

    doc = """Summary line.

        With ``cell_size`` and ``channels=gray``, see :func:`skimage.feature.hog`
        and :meth:`~featx.extractors.hog.HOG.render`; *centred* bins, **strong**,
        ``k*w - w/2`` and a literal ``D = (H//cs) *
        (W//cs)`` over two lines.  ``window`` is a mode here.

        Notes
        -----
        Plain text.
        """
    text = plain(doc, params=["cell_size", "channels", "window"], values=["window", "grid"])
    assert "``" not in text and ":func:" not in text and ":meth:" not in text and "-----" not in text
    assert "`--cell-size`" in text and "`--channels gray`" in text
    assert "`skimage.feature.hog`" in text and "`render`" in text
    assert "centred bins" in text and "strong," in text and "`k*w - w/2`" in text
    assert "`D = (H//cs) *\n(W//cs)`" in text
    assert "`window` is a mode" in text          # a parameter name that is also a value: a word
    assert "\nNotes:\nPlain text." in text
    assert text.splitlines()[2].startswith("With ")  # common indentation removed


def test_info_is_plain_text_with_the_options_users_type():
    r = ok(featx_inprocess("info", "hog"))
    text = out(r)
    assert "``" not in text and ":func:" not in text
    assert not re.search(r"^\s*-{3,}\s*$", text, re.M), "reST section underline left in"
    assert "Notes:" in text and "`--cell-size`" in text
    for name in ("gradients", "gabor", "haar", "sift", "flow"):
        text = out(ok(featx_inprocess("info", name)))
        assert "``" not in text and ":func:" not in text and ":meth:" not in text, name


def test_info_takes_the_extractors_parameters():
    """`featx info hog --cell-size 16 --size 640x480` gives D for those settings."""
    from featx.extractors.hog import HOG

    r = ok(featx_inprocess("info", "hog", "--cell-size", "16", "--bins", "12", "--size", "640x480"))
    d = HOG.create(cell_size=16, bins=12).output_spec(480, 640).length
    assert d != HOG().output_spec(480, 640).length
    assert f"{d} float32 values for 640x480 images" in words(r)
    assert re.search(r"--cell-size\s+integer\s+16 \(default 8\)", out(r))
    # --resize: the size the extractor sees
    r = ok(featx_inprocess("info", "hog", "--size", "640x480", "--resize", "256x128"))
    assert f"{HOG().output_spec(128, 256).length} float32 values for 640x480 images resized to 256x128" in words(r)
    # the same validation as extract: a bad value is a usage error naming the valid range
    r = featx_inprocess("info", "hog", "--cell-size", "0")
    assert r.returncode == 2 and "--cell-size" in err(r) and "1 to 1024" in err(r)


def test_info_speaks_in_words_not_python_values():
    r = ok(featx_inprocess("info", "sift", "--size", "640x480"))
    assert "None" not in out(r) and "N keypoints x 128" in words(r)
    r = ok(featx_inprocess("info", "sift", "--dense", "--size", "640x480"))
    from featx.extractors.sift import SIFT

    assert f"{SIFT.create(dense=True).output_spec(480, 640).length} float32 values" in words(r)
    r = ok(featx_inprocess("info", "cnn"))
    text = out(r)
    assert "None" not in text and "False" not in text and "not set" in text
    assert re.search(r"--input-size\s+WIDTHxHEIGHT", text)
    r = ok(featx_inprocess("info", "gabor", "--result", "maps", "--size", "64x48"))
    assert "48 x 64 x 32" in words(r)


def test_info_lists_show_only_parameters_as_such():
    text = out(ok(featx_inprocess("info", "haar")))
    assert "--cascade" in text and "featx show" in text


def test_as_config_runs_as_written(photos, tmp_path):
    """`featx info hog --as-config > hog.toml` then `featx extract hog photos/ -o hog.npy
    --config hog.toml` (the README's commands) on photos of four sizes: every photo written."""
    import numpy as np

    (tmp_path / "hog.toml").write_bytes(ok(featx_inprocess("info", "hog", "--as-config")).stdout)
    ok(featx_inprocess("extract", "hog", "photos/", "-o", "hog.npy", "--config", "hog.toml", "-q", "-j", "1",
                       cwd=tmp_path))
    assert np.load(tmp_path / "hog.npy").shape[0] == len(PHOTOS)
    # the settings given to info are the settings of the file, and of the run
    text = ok(featx_inprocess("info", "hog", "--as-config", "--cell-size", "16", "--resize", "96x64")).stdout
    (tmp_path / "h16.toml").write_bytes(text)
    ok(featx_inprocess("extract", "hog", "photos/", "-o", "h16.npy", "--config", "h16.toml", "-q", "-j", "1",
                       cwd=tmp_path))
    side = json.loads((tmp_path / "h16.npy.featx.json").read_text())
    assert side["extractor"]["params"]["cell_size"] == 16 and side["options"]["resize"] == [96, 64]
    # an extractor whose length does not depend on the size: resize left as a comment
    text = ok(featx_inprocess("info", "gradients", "--as-config")).stdout.decode()
    assert "\n# resize = " in text and "\nresize = " not in text


def test_readme_config_example_runs(photos, tmp_path):
    readme = "\n".join((ROOT / "docs" / page).read_text() for page in ("recipes.md", "usage.md"))
    section = readme[readme.index("## Config files"):]
    toml = re.search(r"```toml\n(.*?)```", section, re.S).group(1)
    assert "[hog]" in toml
    (tmp_path / "hog.toml").write_text(toml)
    line = next(l for l in readme.splitlines() if "--config hog.toml" in l and l.startswith("featx extract"))
    args = shlex.split(line.split("#")[0])[1:]
    ok(featx_inprocess(*args, "-q", "-j", "1", cwd=tmp_path))


# ---------------------------------------------------------------------------
# config files


def _config(tmp_path: Path, text: str, *args, name="hog"):
    (tmp_path / "c.toml").write_text(text)
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    return featx_inprocess("extract", name, "a.jpg", "-o", "out.npy", "--resize", "64x64", "-q", "-j", "1",
                           "--config", "c.toml", *args, cwd=tmp_path)


@pytest.mark.parametrize("text,words", [
    ("[hogg]\nbins = 12\n", ["c.toml", "[hogg]", "did you mean [hog]"]),
    ("[gabor]\nbins = 12\n", ["c.toml", "[gabor]", "gabor, not hog", "[hog]"]),
    ("[extra]\nbins = 12\n", ["c.toml", "[extra]", "reads [hog]"]),
    ("binz = 12\n", ["c.toml", "'binz'", "did you mean bins?"]),
    ("[hog]\ncell_sise = 12\n", ["c.toml", "'cell_sise'", "did you mean cell-size?"]),
    ("use-hash = true\n", ["c.toml", "'use-hash'", "did you mean hash?"]),
    ("cell-size = 0\n", ["c.toml", "cell-size = 0", "1 to 1024"]),
    ("[hog]\nbins = 500\n", ["c.toml", "bins = 500", "1 to 180"]),
])
def test_config_mistakes_are_errors_naming_file_key_and_closest(tmp_path, text, words):
    r = _config(tmp_path, text)
    e = err(r)
    assert r.returncode == 2 and "Traceback" not in e, e
    for w in words:
        assert w in e, (w, e)
    assert not (tmp_path / "out.npy").exists()


def test_config_keys_are_the_flags_own_names(tmp_path):
    """`hash` for --hash (not its Python name use_hash), `files-from` for --files-from."""
    (tmp_path / "list.txt").write_text("a.jpg\n")
    r = _config(tmp_path, 'hash = true\n[hog]\nbins = 6\n')
    ok(r)
    side = json.loads((tmp_path / "out.npy.featx.json").read_text())
    assert side["options"]["hash"] is True and side["extractor"]["params"]["bins"] == 6
    (tmp_path / "c.toml").write_text('files-from = ["list.txt"]\n')
    ok(featx_inprocess("extract", "hog", "-o", "l.npy", "--resize", "64x64", "-q", "-j", "1",
                       "--config", "c.toml", cwd=tmp_path))
    assert (tmp_path / "l.npy").exists()


def test_one_haar_table_serves_show_and_extract(tmp_path):
    """Show-only parameters are not options of extract, yet a [haar] table may hold them."""
    shutil.copy(SAMPLES / "astronaut.png", tmp_path / "a.png")
    (tmp_path / "c.toml").write_text('[haar]\nshow = "response"\nn-scales = 2\n')
    ok(featx_inprocess("extract", "haar", "a.png", "-o", "h.npy", "-q", "-j", "1", "--config", "c.toml",
                       cwd=tmp_path))
    assert json.loads((tmp_path / "h.npy.featx.json").read_text())["extractor"]["params"]["n_scales"] == 2
    ok(featx_inprocess("show", "haar", "a.png", "-o", "h.png", "--config", "c.toml", cwd=tmp_path))
    (tmp_path / "c.toml").write_text('[haar]\nshow = "respons"\n')   # still checked
    r = featx_inprocess("extract", "haar", "a.png", "-o", "h2.npy", "--config", "c.toml", cwd=tmp_path)
    assert r.returncode == 2 and "c.toml" in err(r) and "response" in err(r)


# ---------------------------------------------------------------------------
# every option listed only where it works


def test_extract_does_not_offer_show_only_options():
    text = out(ok(featx_inprocess("extract", "haar", "--help")))
    for opt in ("--show", "--cascade", "--scale-factor", "--min-neighbors", "--min-size"):
        assert not re.search(rf"^\s+{opt}\b", text, re.M), opt
    assert "--n-scales" in text
    text = out(ok(featx_inprocess("show", "haar", "--help")))
    for opt in ("--show", "--cascade", "--scale-factor"):
        assert re.search(rf"^\s+{opt}\b", text, re.M), opt
    assert "--cam-class" not in out(ok(featx_inprocess("extract", "cnn", "--help")))
    assert "--cam-class" in out(ok(featx_inprocess("show", "cnn", "--help")))


def test_codebook_lists_only_extractors_with_local_descriptors(tmp_path):
    from featx import registry
    from featx.codebook import supports_codebook

    text = out(ok(featx_inprocess("codebook", "--help")))
    listed = text[text.index("Extractors"):].split()
    for name in registry.names():
        assert (name in listed) == supports_codebook(registry.get(name)), name
    r = featx_inprocess("codebook", "hog", str(SAMPLES / "coffee.jpg"), "-k", "2", "-o", tmp_path / "cb.npz")
    assert r.returncode == 2 and "hog has no local descriptors" in err(r) and "sift" in err(r)


def test_detect_help_offers_what_detect_does():
    text = out(ok(featx_inprocess("detect", "--help")))
    assert "NAME.npy" not in text and "npy-dir" not in text and "folder/" not in text
    assert not re.search(r"^\s+(-f, )?--format\b", text, re.M)
    assert not re.search(r"^\s+--regions\b", text, re.M)
    assert "CSV" in text and "Examples:" in text


def test_group_usage_says_name():
    for group in ("extract", "show", "info", "codebook"):
        text = out(ok(featx_inprocess(group, "--help")))
        assert f"featx {group} [OPTIONS] NAME [ARGS]..." in text, text[:200]


# ---------------------------------------------------------------------------
# messages in the user's words


def test_a_misspelt_extractor_gets_did_you_mean(tmp_path):
    for cmd in ("extract", "info", "show"):
        r = featx_inprocess(cmd, "hogg", "x", "-o", tmp_path / "o.npy")
        assert r.returncode == 2 and "did you mean hog?" in err(r), err(r)
    r = featx_inprocess("extract", "zzzz", "x", "-o", "-")
    assert r.returncode == 2 and "did you mean" not in err(r) and "available:" in err(r)


def test_other_settings_are_named_as_options_not_python_values(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    ok(featx_inprocess("extract", "hog", "a.jpg", "-o", "o.npy", "-q", "-j", "1", cwd=tmp_path))
    r = featx_inprocess("extract", "hog", "a.jpg", "-o", "o.npy", "-q", "-j", "1", "--resize", "64x64",
                        "--transform-sqrt", cwd=tmp_path)
    e = err(r)
    assert r.returncode == 2 and "None" not in e and "'" not in e.split("settings", 1)[1], e
    assert "--resize: not set -> 64x64" in e and "--transform-sqrt: off -> on" in e
    assert "resize-mode" not in e  # it follows --resize


def test_models_fetch_of_the_bundled_model_downloads_nothing(tmp_path):
    r = featx_inprocess("models", "fetch", "efficientnet-lite0",
                        env={"FEATX_CACHE_DIR": str(tmp_path / "cache"), "https_proxy": "http://127.0.0.1:9",
                             "http_proxy": "http://127.0.0.1:9"})
    ok(r)
    assert "bundled" in err(r) and "nothing to download" in err(r)
    assert not (tmp_path / "cache").exists()
    assert "bundled" in out(ok(featx_inprocess("models")))


def test_every_exit_code_is_listed_in_help_and_readme():
    from featx.errors import ExitCode

    top = out(ok(featx_inprocess("--help")))
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Exit codes"):readme.index("## Read more")]
    for code in ExitCode:
        assert re.search(rf"\b{int(code)}\b", top), code
        assert f"| {int(code)} |" in table, code


def test_sizes_one_number_is_a_square_and_nothing_else_is_guessed(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    square = ok(featx_inprocess("extract", "hog", "a.jpg", "-o", "-", "-q", "-j", "1", "--resize", "64",
                                cwd=tmp_path)).stdout
    full = ok(featx_inprocess("extract", "hog", "a.jpg", "-o", "-", "-q", "-j", "1", "--resize", "64x64",
                              cwd=tmp_path)).stdout
    assert square == full
    r = featx_inprocess("extract", "hog", "a.jpg", "-o", "-", "--resize", "64,48", cwd=tmp_path)
    assert r.returncode == 2 and "WIDTHxHEIGHT" in err(r)
    assert "256 = 256x256" in out(ok(featx_inprocess("extract", "hog", "--help")))


def test_sampling_on_image_files_is_a_usage_error():
    from featx.errors import UsageError
    from featx.inputs import check_sampling_applies

    imgs = [str(SAMPLES / "coffee.jpg"), str(SAMPLES / "chelsea.png")]
    with pytest.raises(UsageError, match="--fps picks frames of videos") as ei:
        check_sampling_applies(imgs, {"fps": 2.0})
    assert "--video" in ei.value.hint
    with pytest.raises(UsageError, match="--max-frames"):
        check_sampling_applies(imgs, {"max_frames": 3, "fps": None})
    # where videos or frames may be: sampling applies
    check_sampling_applies(imgs + [str(SAMPLES / "clip.mp4")], {"fps": 2.0})
    check_sampling_applies([str(SAMPLES)], {"fps": 2.0})
    check_sampling_applies(["-"], {"fps": 2.0})
    check_sampling_applies(imgs, {"fps": 2.0}, files_from=["list.txt"])
    check_sampling_applies(imgs, {"fps": 2.0}, frames=True)
    check_sampling_applies(imgs, {})


# ---------------------------------------------------------------------------
# examples in the help


HELPS = [("list",), ("info",), ("info", "hog"), ("merge",), ("codebook",), ("codebook", "sift"), ("detect",),
         ("models",), ("show",)]


def _examples(*cmd) -> list[str]:
    text = out(ok(featx_inprocess(*cmd, "--help")))
    assert "Examples:" in text, cmd
    block = text[text.index("Examples:") + len("Examples:"):].split("\n\n")[0]
    lines = [re.split(r"\s{2,}", l.strip())[0] for l in block.splitlines() if l.strip()]
    assert 2 <= len(lines) <= 3 and all(l.startswith("featx ") for l in lines), (cmd, lines)
    return lines


@pytest.mark.parametrize("cmd", HELPS, ids=lambda c: "-".join(c))
def test_help_has_two_or_three_examples(cmd):
    _examples(*cmd)


@pytest.mark.slow
@pytest.mark.parametrize("cmd", HELPS, ids=lambda c: "-".join(c))
def test_help_examples_run(cmd, tmp_path):
    """Each example runs as written, on copies of the sample photos (photos/, train/) and
    samples/; `> FILE` is written as a shell would."""
    copy_samples(tmp_path / "photos", PHOTOS)
    copy_samples(tmp_path / "train", PHOTOS)
    shutil.copytree(SAMPLES, tmp_path / "samples")
    for line in _examples(*cmd):
        for part in line.split("&&"):
            args = shlex.split(part)
            assert args[0] == "featx"
            target = None
            if ">" in args:
                target = tmp_path / args[args.index(">") + 1]
                args = args[:args.index(">")]
            r = featx(*args[1:], cwd=tmp_path)
            assert r.returncode == 0, (part, err(r)[-2000:])
            if target is not None:
                target.write_bytes(r.stdout)


def test_library_messages_show_no_python_values():
    """Parameter errors and codebook mismatches name options and values as a user writes them."""
    from featx.encoding import _fmt_sig
    from featx.errors import ParamError
    from featx.extractor import build_params
    from featx.extractors.hog import HOG

    with pytest.raises(ParamError) as ei:
        build_params(HOG, {"bins": None})
    assert "None" not in ei.value.message and "--bins needs a value" in ei.value.message
    text = _fmt_sig({"root_sift": True, "dense": False, "sigma": 1.6, "scale": None})
    assert text == "--dense off, --root-sift on, --scale not set, --sigma 1.6"


def _extract_examples(*cmd) -> list[str]:
    text = out(ok(featx_inprocess(*cmd, "--help")))
    block = text[text.index("Examples:") + len("Examples:"):].split("\n\n")[0]
    return [l.strip() for l in block.splitlines() if l.strip()]


def test_extract_help_puts_the_extractors_options_first_then_run_options_in_groups():
    text = out(ok(featx_inprocess("extract", "hog", "--help")))
    heads = [l for l in text.splitlines() if l and not l.startswith(" ") and l.endswith(":")]
    assert heads[0].startswith("hog options"), heads
    assert heads[1:] == ["Output:", "Inputs:", "Videos and frame sequences:", "Running:",
                         "Production runs (cron, resume, shards):", "Other options:", "Examples:"], heads
    hog_part = text.split("hog options")[1].split("Output:")[0]
    assert "--cell-size" in hog_part and "--jobs" not in hog_part
    assert "--fps" in text.split("Videos and frame sequences:")[1].split("Running:")[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hog", "sift", "flow"])
def test_extract_help_examples_run_as_written(name, tmp_path):
    """The examples of `featx extract NAME --help`, run by a shell in a folder holding
    photos/, clip.mp4, frames/ and videos/ (what the examples name)."""
    import subprocess
    import sys

    copy_samples(tmp_path / "photos", PHOTOS)
    shutil.copyfile(SAMPLES / "clip.mp4", tmp_path / "clip.mp4")
    (tmp_path / "videos").mkdir()
    shutil.copyfile(SAMPLES / "clip.mp4", tmp_path / "videos" / "a.mp4")
    copy_samples(tmp_path / "frames" / "seq", {f"f{i}.jpg": "coffee.jpg" for i in range(3)})
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "featx").write_text(f"#!/bin/sh\nexec {sys.executable} -m featx \"$@\"\n")
    (bindir / "featx").chmod(0o755)
    env = {**__import__("os").environ, "PATH": f"{bindir}:{__import__('os').environ['PATH']}"}
    lines = _extract_examples("extract", name)
    assert 2 <= len(lines) <= 3
    for line in lines:
        if "|" in line or ">" in line:  # a pipeline: as a shell runs it
            r = subprocess.run(["sh", "-c", line], cwd=tmp_path, env=env, capture_output=True, timeout=300)
        else:  # one plain command: in this process
            args = shlex.split(line, comments=True)
            assert args[0] == "featx", line
            r = featx(*args[1:], cwd=tmp_path)
        assert r.returncode == 0, (line, r.stderr.decode()[-2000:])


def test_show_frame_past_the_end_says_how_many_frames_there_are(tmp_path):
    r = featx("show", "hog", SAMPLES / "clip.mp4", "--frame", "500", "-o", tmp_path / "x.png")
    assert r.returncode == 2
    assert b"clip.mp4 has 62 frames (0 to 61); --frame 500 is past its end" in r.stderr, r.stderr
    assert not (tmp_path / "x.png").exists()


def test_a_missing_list_of_inputs_is_a_usage_error(tmp_path):
    r = featx("extract", "hog", "--files-from", tmp_path / "nolist.txt", "-o", tmp_path / "y.npy")
    assert r.returncode == 2 and b"cannot read the list --files-from" in r.stderr and b"Traceback" not in r.stderr
    assert not list(tmp_path.iterdir())
