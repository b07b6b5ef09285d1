"""``featx detect``: regions (faces, eyes, any Haar cascade) as CSV rows."""
from __future__ import annotations

import click

from .extract import _build_extract


def _build_detect() -> click.Command:
    from .. import registry
    from ..regions import available_cascades

    cmd = _build_extract(registry.get("detect"))
    cmd.name = "detect"
    cmd.help = ("Find regions (faces, eyes, any Haar cascade) and write one CSV row per region: "
                "path,x,y,w,h (path,frame,time,x,y,w,h for videos and frame folders), in the pixels of "
                "the image as decoded, also with --resize (which only sets the size the cascade works at). "
                "With --track, the boxes of consecutive frames of each video are linked into tracks: "
                "path,track,frame,time,x,y,w,h."
                "\n\nINPUTS are image files, folders, videos or - for paths on stdin. "
                "Bundled cascades: " + ", ".join(sorted(available_cascades())) + ".")
    cmd.params_title = "detect options"
    cmd.examples = ["featx detect photos/ -o faces.csv",
                    "featx detect samples/scenes.mp4 --track -o tracks.csv    # video: a track id per face",
                    "featx extract cnn --regions faces.csv -o faces.npy      # one embedding per face"]
    # detect looks at whole images (boxes found inside --regions crops would be in the crops'
    # pixels) and writes CSV only: the options for other inputs and formats are not offered
    dropped = {p.name: p.default for p in cmd.params if p.name in ("regions", "format")}
    cmd.params = [p for p in cmd.params if p.name not in dropped]
    for p in cmd.params:
        if p.name == "output":
            p.help = "CSV file to write (NAME.csv), or - for CSV on stdout."
            p.metavar = "CSV"
        elif p.name == "resize":
            p.help = ("Resize every image to WIDTHxHEIGHT before detecting; boxes stay in the pixels of "
                      "the image as decoded.")
    extract_callback = cmd.callback
    cmd.callback = lambda **kwargs: extract_callback(**dropped, **kwargs)
    cmd.short_help = "Find regions with a Viola-Jones Haar cascade (path,x,y,w,h per region)."
    return cmd


class _LazyDetect(click.Command):
    """Builds the detect command on first use, so start-up stays light."""

    def __init__(self):
        super().__init__("detect", short_help="Find regions with a Viola-Jones Haar cascade (path,x,y,w,h rows).")

    def _real(self):
        if not hasattr(self, "_cmd"):
            self._cmd = _build_detect()
        return self._cmd

    def main(self, *a, **k):  # pragma: no cover - not used as a root command
        return self._real().main(*a, **k)

    def make_context(self, info_name, args, parent=None, **extra):
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return self._real().invoke(ctx)

    def get_help(self, ctx):
        return self._real().get_help(ctx)


detect_cmd = _LazyDetect()
