"""`featx show` pictures carry their keys, the image under them where promised, and a
folder gives a contact sheet — checked on the pixels, without a screenshot.

Every picture is the extractor's drawing at the top left (in the image's own pixels) and a
caption band below it (title, colour wheels, colour bars, legends).  The library tests find
the parts through ``figure(...).regions``; the command-line tests only through the PNG:
the rows below the image are the caption.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from featx import picture
from featx.extractors.flow import Flow
from featx.extractors.gabor import Gabor
from featx.extractors.gradients import Gradients
from featx.extractors.haar import Haar
from featx.extractors.hog import HOG
from featx.extractors.sift import SIFT
from featx.imageops import to_gray_uint8

from helpers import SAMPLES, featx

# ---------------------------------------------------------------------------
# reading pixels


def ink(region: np.ndarray) -> np.ndarray:
    """Pixels of dark text (all channels low) on the white caption."""
    return (region.max(axis=2) < 100)


def text_rows(region: np.ndarray) -> int:
    """How many pixel rows hold ink: a line of text is about 10."""
    return int(ink(region).any(axis=1).sum())


def hues(region: np.ndarray, min_sat: int = 120, min_val: int = 80, width: int = 30) -> set[int]:
    """The 30-degree hue sectors (0 = red, 4 = green, 8 = blue) of the saturated pixels."""
    hsv = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(int)
    keep = (hsv[:, 1] >= min_sat) & (hsv[:, 2] >= min_val)
    return set((hsv[keep, 0] * 360 // 256 // width).tolist())


def has_gray_ramp(region: np.ndarray) -> bool:
    """A row holding a run of 100+ gray pixels that climbs from black to white (a gray bar)."""
    px = region.astype(int)
    neutral = (px.max(axis=2) - px.min(axis=2)) <= 2
    for y in range(region.shape[0]):
        g = px[y, :, 0]
        start = 0
        for x in range(1, len(g) + 1):
            if x == len(g) or not neutral[y, x] or not neutral[y, x - 1] or g[x] < g[x - 1] - 1:
                run = g[start:x]
                if len(run) >= 100 and run[0] <= 10 and run[-1] >= 240:
                    return True
                start = x
    return False


def hue_of(colour) -> int:
    """The hue (degrees) of an RGB colour, as :func:`hues` measures it."""
    return int(cv2.cvtColor(np.uint8([[colour]]), cv2.COLOR_RGB2HSV_FULL)[0, 0, 0]) * 360 // 256


def has_hue(region: np.ndarray, hue: int, tol: int = 6, min_sat: int = 120, min_val: int = 80) -> bool:
    """Whether saturated pixels of this hue are there (antialiased marks keep their hue)."""
    hsv = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(int)
    keep = (hsv[:, 1] >= min_sat) & (hsv[:, 2] >= min_val)
    d = np.abs((hsv[keep, 0] * 360 // 256 - hue + 180) % 360 - 180)
    return bool((d <= tol).sum() >= 3)


def has_colours(region: np.ndarray, colours, tol: int = 2) -> list[bool]:
    flat = region.reshape(-1, 3).astype(int)
    return [bool((np.abs(flat - np.array(c)).max(axis=1) <= tol).any()) for c in colours]


def read_png(path) -> np.ndarray:
    pic = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert pic is not None, path
    return cv2.cvtColor(pic, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------------------
# through the command line: a caption with text and the key's colours under every picture


def _sift_octave_colours_ok(pic, h, w):
    drawn = [c for c in SIFT.OCTAVE_COLOURS if has_hue(pic[:h, :w], hue_of(c))]
    assert len(drawn) >= 3, "keypoints of several octaves"
    assert all(has_hue(pic[h:], hue_of(c)) for c in drawn), "each octave colour drawn has its legend entry"


CLI_CASES = {
    # name: (args, check of the caption (rows below the image))
    "gradients": (["chelsea.png"], lambda pic, h, w: (len(hues(pic[h:])) >= 11 and has_gray_ramp(pic[h:]))),
    "hog": (["chelsea.png"], lambda pic, h, w: has_gray_ramp(pic[h:])),
    "sift": (["chelsea.png"], lambda pic, h, w: _sift_octave_colours_ok(pic, h, w) is None),
    "flow": (["rocket.jpg", "shifted"], lambda pic, h, w: len(hues(pic[h:])) >= 11),
    "haar": (["astronaut.png"], lambda pic, h, w: {2, 4, 5} <= hues(pic[h:], min_sat=60)),   # viridis
    "gabor": (["camera.png"], lambda pic, h, w: {0, 8} <= hues(pic[h:]) and {4, 5} & hues(pic[h:], 60)),
}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_show_picture_has_a_caption_with_its_key(tmp_path, name):
    args, check = CLI_CASES[name]
    paths = []
    for a in args:
        if a == "shifted":  # the second frame: the first moved 2 px right, 1 px down
            img = cv2.imread(str(SAMPLES / args[0]))
            moved = cv2.warpAffine(img, np.float32([[1, 0, 2], [0, 1, 1]]), img.shape[1::-1],
                                   borderMode=cv2.BORDER_REFLECT)
            paths.append(tmp_path / "moved.png")
            cv2.imwrite(str(paths[-1]), moved)
        else:
            paths.append(SAMPLES / a)
    out = tmp_path / f"{name}.png"
    r = featx("show", name, *paths, "-o", out)
    assert r.returncode == 0, r.stderr
    pic = read_png(out)
    h, w = cv2.imread(str(paths[0])).shape[:2]
    if name in ("haar", "gabor"):   # tiles, not the image: the caption is the last rows of text
        h = pic.shape[0] - 160
    assert pic.shape[0] > h + 60, "a caption below the picture"
    assert text_rows(pic[h:]) >= 20, "at least two lines of text in the caption"
    assert check(pic, h, w)


# ---------------------------------------------------------------------------
# gradients: a colour wheel that holds the picture's colours, a magnitude bar


def test_gradients_wheel_holds_the_pictures_colours_and_a_magnitude_bar(sample):
    img = sample("coffee.jpg")
    fig = Gradients.create().figure(img)
    h, w = img.shape[:2]
    assert fig.regions["picture"] == (0, 0, w, h)
    wheel, bar = fig.crop("wheel"), fig.crop("magnitude")
    assert len(hues(wheel)) == 12                      # every direction has its colour
    assert hues(fig.crop("picture")) <= hues(wheel)
    assert text_rows(wheel) >= 30                      # title, four direction labels, note
    assert has_gray_ramp(bar) and text_rows(bar) >= 15  # the bar, its label and numbers
    assert text_rows(fig.crop("title")) >= 10
    # the rim of the wheel at 0 degrees (right) has the colour of a rightward gradient
    step = np.zeros((40, 40), np.uint8)
    step[:, 20:] = 255
    red = Gradients.create().figure(step).crop("picture")[5, 19]
    assert tuple(red) == (255, 0, 0)
    unsigned = Gradients.create(signed=False).figure(img)
    assert len(hues(unsigned.crop("wheel"))) == 12


# ---------------------------------------------------------------------------
# hog: the glyphs over the image dimmed, a key per bin, a brightness scale


@pytest.mark.parametrize("name", ["chelsea.png", "rocket.jpg", "camera.png"])
def test_hog_draws_over_the_dimmed_image(sample, name):
    img = sample(name)
    fig = HOG.create().figure(img)
    pic = fig.crop("picture").astype(int)
    under = np.rint(to_gray_uint8(img) * 0.4).astype(int)[..., None]
    same = (np.abs(pic - under) <= 1).all(axis=2)
    assert same.mean() > 0.2, "between the glyphs, the dimmed image itself"
    assert (pic >= under - 1).all(), "glyphs only brighten"
    g = to_gray_uint8(img).astype(float)
    assert np.corrcoef(pic[same][:, 0], g[same])[0, 1] > 0.99
    assert (pic[~same] > under[~same] + 1).any(axis=-1).mean() > 0.9


def test_hog_key_shows_one_glyph_per_bin(sample):
    fig = HOG.create(bins=6).figure(sample("chelsea.png"))
    bins = fig.crop("bins")
    assert text_rows(bins) >= 25                       # heading and the bins' angles
    lines = ink(bins[-28:])                           # the glyphs (26 px), under the angles
    n, _ = cv2.connectedComponents(lines.astype(np.uint8))
    assert n - 1 == 6
    assert has_gray_ramp(fig.crop("scale"))


# ---------------------------------------------------------------------------
# sift: the legend explains every colour drawn


def test_sift_legend_lists_each_octave_drawn(sample):
    img = sample("coffee.jpg")
    ext = SIFT.create()
    fig = ext.figure(img)
    octaves = sorted(set(ext.describe(img).points[:, 5].astype(int).tolist()))
    colours = [ext.octave_colour(o) for o in octaves]
    assert all(has_hue(fig.crop("picture"), hue_of(c)) for c in colours)
    assert all(has_hue(fig.crop("legend"), hue_of(c)) for c in colours)
    others = [c for c in SIFT.OCTAVE_COLOURS if c not in colours]
    assert not any(has_hue(fig.crop("legend"), hue_of(c)) for c in others)
    assert text_rows(fig.crop("legend")) >= 10 * len(octaves)
    # the image is under the keypoints: dimmed gray where nothing is drawn
    pic = fig.crop("picture").astype(int)
    under = np.rint(to_gray_uint8(img) * 0.55).astype(int)[..., None]
    assert (np.abs(pic - under) <= 1).all(axis=2).mean() > 0.6


# ---------------------------------------------------------------------------
# haar: by default what extract computes


def _ranks(x):
    return np.argsort(np.argsort(x))


def test_haar_shows_the_features_by_default(sample):
    img = sample("rocket.jpg")
    ext = Haar.create()
    assert ext.params.show == "features"
    fig = ext.figure(img)
    vec = ext.extract(img).reshape(5, 3, 4, 4)
    lum = np.empty_like(vec)
    for t in range(5):
        for s in range(3):
            tile = fig.crop(f"tile {t} {s}")
            th, tw = tile.shape[:2]
            ys = np.rint(np.linspace(0, th, 5)).astype(int)
            xs = np.rint(np.linspace(0, tw, 5)).astype(int)
            gray = tile.astype(float) @ [0.299, 0.587, 0.114]
            for r in range(4):
                for c in range(4):
                    lum[t, s, r, c] = np.median(gray[ys[r] + 2:ys[r + 1] - 1, xs[c] + 2:xs[c + 1] - 1])
    # viridis gets lighter with the value: the cells' brightness follows the 240 features
    rho = np.corrcoef(_ranks(lum.ravel()), _ranks(vec.ravel()))[0, 1]
    assert rho > 0.85, rho
    for t in range(5):
        assert text_rows(fig.crop(f"tile row {t}")) >= 8    # template drawing and name
    for s in range(3):
        assert text_rows(fig.crop(f"tile header {s}")) >= 8  # "4 px", "8 px", "16 px"
    assert {2, 4, 5} <= hues(fig.crop("scale"), min_sat=60)


def test_haar_response_has_a_signed_colour_scale_and_template(sample):
    fig = Haar.create(show="response", types="type-2-y").figure(sample("astronaut.png"))
    scale = fig.crop("scale")
    assert {0, 8} <= hues(scale) and text_rows(scale) >= 15
    tpl = fig.crop("template")
    assert has_colours(tpl, [(0, 0, 0), (255, 255, 255)]) == [True, True]
    assert text_rows(fig.crop("title")) >= 20


def test_haar_window_mode_draws_the_strongest_feature_of_each_type(sample):
    fig = Haar.create(mode="window").figure(sample("astronaut.png"))
    for i in range(5):
        tile = fig.crop(f"tile 0 {i}")
        assert {0} <= hues(tile, min_sat=80) and ({7, 8} & hues(tile, min_sat=80))   # + red, - blue
        assert text_rows(fig.crop(f"tile header {i}")) >= 8


def test_haar_boxes_are_still_there_on_request(sample):
    fig = Haar.create(show="boxes").figure(sample("astronaut.png"))
    green = (fig.crop("picture") == (0, 255, 0)).all(axis=2)
    assert green.any() and has_colours(fig.crop("legend"), [(0, 255, 0)]) == [True]


# ---------------------------------------------------------------------------
# gabor: rows and columns labelled


def test_gabor_rows_and_columns_are_labelled(sample):
    ext = Gabor.create(n_scales=3, n_orientations=4)
    fig = ext.figure(sample("camera.png"))
    for part in ("kernels", "responses"):
        heads = [fig.crop(f"{part} tile header {o}") for o in range(4)]
        rows = [fig.crop(f"{part} tile row {s}") for s in range(3)]
        assert all(text_rows(x) >= 8 for x in heads + rows)
        # different orientations and frequencies: different labels
        assert len({ink(x)[:, :min(y.shape[1] for y in heads)].tobytes() for x in heads}) == 4
        assert len({ink(x).tobytes() for x in rows}) == 3
        assert all(f"{part} tile {s} {o}" in fig.regions for s in range(3) for o in range(4))
    assert {0, 8} <= hues(fig.crop("kernel key"))
    assert len(hues(fig.crop("response key"), min_sat=60)) >= 3


# ---------------------------------------------------------------------------
# flow: drawn on the first frame, with a wheel and a speed scale


def test_flow_draws_on_the_first_frame_with_wheel_and_speed(sample):
    img = sample("chelsea.png")
    h, w = img.shape[:2]
    moved = cv2.warpAffine(img, np.float32([[1, 0, 2], [0, 1, 1]]), (w, h), borderMode=cv2.BORDER_REFLECT)
    fig = Flow.create().figure_pair(img, moved)
    pic = fig.crop("picture")
    value = pic.max(axis=2).astype(float)            # HSV value: the frame's brightness
    assert np.corrcoef(value.ravel(), to_gray_uint8(img).ravel())[0, 1] > 0.97
    sat = cv2.cvtColor(pic, cv2.COLOR_RGB2HSV)[..., 1]
    assert np.median(sat) > 100                       # the motion is coloured in
    wheel, speed = fig.crop("wheel"), fig.crop("speed")
    assert len(hues(wheel)) == 12 and text_rows(wheel) >= 30
    assert {0, 3, 6, 9} <= hues(speed) and text_rows(speed) >= 15   # right, down, left, up
    still = Flow.create().figure_pair(img, img).crop("picture")
    assert np.abs(still.max(axis=2).astype(int) - np.rint(
        255 * (0.3 + 0.6 * to_gray_uint8(img) / 255.0))).max() <= 1   # no motion: the frame in gray


# ---------------------------------------------------------------------------
# the shared pieces


def test_caption_grows_with_big_pictures():
    small = picture.with_caption(np.zeros((300, 400, 3), np.uint8), "a title")
    big = picture.with_caption(np.zeros((3000, 4000, 3), np.uint8), "a title")
    assert text_rows(big.crop("title")) > 5 * text_rows(small.crop("title"))


def test_numbers_in_keys():
    assert [picture.number(v) for v in (0, 27.94, 110, 0.03125, 1234567, -0.5)] == \
        ["0", "27.9", "110", "0.0312", "1.23e6", "-0.5"]


# ---------------------------------------------------------------------------
# contact sheets


def _sheet_tiles(sheet: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of what stands on the sheet's gray background, top to bottom, left to right."""
    fg = (np.abs(sheet.astype(int) - picture.SHEET).max(axis=2) > 0).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(fg)
    boxes = [tuple(int(v) for v in stats[i, :4]) for i in range(1, n) if stats[i, 4] > 1000]
    return sorted(boxes, key=lambda b: (b[1] // 50, b[0]))


def test_show_folder_gives_a_contact_sheet_of_labelled_tiles(tmp_path):
    out = tmp_path / "sheet.png"
    r = featx("show", "gradients", SAMPLES, "-o", out)
    assert r.returncode == 0, r.stderr
    sheet = read_png(out)
    names = sorted(p.name for p in SAMPLES.iterdir() if p.suffix in (".png", ".jpg"))
    boxes = _sheet_tiles(sheet)
    assert len(boxes) == len(names) == 5
    lh = picture.Style().line_height
    ext = Gradients.create()
    for (x, y, w, h), name in zip(boxes, names):
        from featx.decode import decode_image

        expected = picture.fit(ext.render(decode_image(str(SAMPLES / name))), picture.SHEET_TILE)
        eh, ew = expected.shape[:2]
        np.testing.assert_array_equal(sheet[y + lh:y + lh + eh, x:x + ew], expected)
        label = np.full((lh, w, 3), 255, np.uint8)
        picture.draw_text(label, str(SAMPLES / name), picture.Style().pad, 0, picture.Style())
        np.testing.assert_array_equal(sheet[y:y + lh, x:x + w], label)   # its file name


def test_contact_sheet_of_files_keeps_going_past_a_bad_one(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not a picture")
    out = tmp_path / "sheet.png"
    r = featx("show", "sift", SAMPLES / "chelsea.png", bad, SAMPLES / "coffee.jpg", "-o", out)
    assert r.returncode == 1
    assert b"notes.png" in r.stderr and b"2 images" in r.stderr
    assert len(_sheet_tiles(read_png(out))) == 2
    r = featx("show", "sift", SAMPLES / "chelsea.png", tmp_path / "missing.png", "-o", out)
    assert r.returncode == 2 and b"missing.png" in r.stderr


def test_show_flow_takes_a_frame_folder(tmp_path, sample):
    img = sample("rocket.jpg")
    h, w = img.shape[:2]
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):   # each frame 2 px further right
        f = cv2.warpAffine(img, np.float32([[1, 0, 2 * i], [0, 1, 0]]), (w, h), borderMode=cv2.BORDER_REFLECT)
        cv2.imwrite(str(frames / f"frame{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out = tmp_path / "flow.png"
    r = featx("show", "flow", frames, "--frame", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    pic = read_png(out)[:h, :w]
    hsv = cv2.cvtColor(pic, cv2.COLOR_RGB2HSV_FULL)
    moving = hsv[..., 1] > 100
    assert moving.mean() > 0.5
    hue = hsv[..., 0][moving].astype(int) * 360 // 256
    assert np.median((hue + 180) % 360 - 180) == pytest.approx(0, abs=15)   # to the right: red
    r = featx("show", "flow", frames, "--frame", "2", "-o", out)
    assert r.returncode == 2 and b"has 3 frames (0 to 2); the motion from --frame 2 needs frame 3 too" in r.stderr
    r = featx("show", "flow", frames, "--frame", "7", "-o", out)
    assert r.returncode == 2 and b"--frame 7 is past its end" in r.stderr and b"choose --frame 0 to 1" in r.stderr


# ---------------------------------------------------------------------------
# an output made before `show` changed its default goes on


def test_haar_show_options_do_not_split_an_output(tmp_path):
    from featx.output.state import State

    out = tmp_path / "haar.npy"
    r = featx("extract", "haar", SAMPLES / "coffee.jpg", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    # the picture's options are not extract's at all (show-only), so they cannot split it there
    r = featx("extract", "haar", SAMPLES / "coffee.jpg", SAMPLES / "chelsea.png", "--show", "response",
              "-o", out, "-q")
    assert r.returncode == 2 and b"No such option '--show'" in r.stderr
    r = featx("extract", "haar", SAMPLES / "coffee.jpg", SAMPLES / "chelsea.png", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    # as an older featx recorded it: with the show options, `show` = boxes
    st = State(str(tmp_path / ".haar.npy.featx-state"))
    config = st.get("config")
    config["extractor"].update(show="boxes", cascade="frontalface_default", scale_factor=1.1,
                               min_neighbors=5, min_size=0)
    st.set_meta(config=config)
    st.close()
    r = featx("extract", "haar", SAMPLES / "coffee.jpg", SAMPLES / "rocket.jpg", "-o", out, "-q")
    assert r.returncode == 0, r.stderr
    assert np.load(out).shape[0] == 3
    r = featx("extract", "haar", SAMPLES / "coffee.jpg", "--grid", "2x2", "-o", out, "-q")
    assert r.returncode == 2 and b"other settings" in r.stderr   # what changes the numbers still counts


def test_contact_sheet_holds_at_most_48_images(tmp_path, sample):
    folder = tmp_path / "many"
    folder.mkdir()
    small = cv2.resize(cv2.imread(str(SAMPLES / "coffee.jpg")), (48, 32), interpolation=cv2.INTER_AREA)
    for i in range(50):
        cv2.imwrite(str(folder / f"img{i:02d}.png"), np.roll(small, i, axis=1))
    out = tmp_path / "sheet.png"
    r = featx("show", "gradients", folder, "-o", out)
    assert r.returncode == 0, r.stderr
    assert b"at most 48" in r.stderr
    assert len(_sheet_tiles(read_png(out))) == 48


@pytest.mark.parametrize("size", [(300, 6), (6, 300)])
def test_tiled_pictures_of_strips_stay_small(sample, size):
    img = cv2.resize(sample("coffee.jpg"), size, interpolation=cv2.INTER_AREA)   # (width, height)
    for ext in (Haar.create(), Gabor.create()):
        fig = ext.figure(img)
        assert fig.pixels.shape[0] < 2500, (ext.name, fig.pixels.shape)
        tile = fig.crop("tile 0 0" if ext.name == "haar" else "responses tile 0 0")
        assert min(tile.shape[:2]) >= 20            # a tile one can see, whatever the aspect
