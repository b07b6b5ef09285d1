"""``featx codebook NAME``: visual words learnt from local descriptors, for
``--encode bovw|vlad|fisher``."""
from __future__ import annotations

import os
import sys

import click

from ..errors import ExitCode, FeatxError, UsageError
from ..names import printable, quote_name
from .extract import _may_fork, _notes, _Shown
from .options import CONTEXT, INPUT_PATH, ExtractorGroup, _config_option, _extract_options, _resize_options, \
    _split_params, _with_extractor_options
from .report import _fail, _say


def _build_codebook(cls) -> click.Command:
    import dataclasses

    from ..encoding import MAX_CODEBOOK_WORDS, EncodingParams

    # a codebook is learnt from the raw descriptors: --encode and its options are extract's
    encoding = frozenset(f.name for f in dataclasses.fields(EncodingParams))

    def callback(inputs, output, k, sample, seed, gmm, resize, resize_mode, files_from, null, overwrite, quiet,
                 jobs, max_pixels, max_memory, **kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        try:
            _do_codebook(cls, params, inputs=inputs, output=output, k=k, sample=sample, seed=seed, gmm=gmm,
                         resize=resize, resize_mode=resize_mode, files_from=files_from, null=null,
                         overwrite=overwrite, quiet=quiet, jobs=jobs, max_pixels=max_pixels, max_memory=max_memory)
        except FeatxError as exc:
            _fail(exc, ctx)

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"Learn a codebook of {cls.name} descriptors (k-means visual words, and a "
                             "diagonal GMM with --gmm) from a seeded random sample of the descriptors of "
                             "INPUTS, for --encode bovw|vlad|fisher.",
                        short_help=f"Learn visual words from {cls.name} descriptors",
                        epilog=f"\b\nExamples:\n  featx codebook {cls.name} train/ -k 256 -o {cls.name}-k256.codebook.npz\n"
                               f"  featx codebook {cls.name} train/ -k 64 --gmm -o {cls.name}-gmm64.codebook.npz")
    run = {o.name: o for o in _extract_options()}  # the run options it shares with featx extract
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["inputs"], nargs=-1, type=INPUT_PATH),
        click.Option(["-o", "--output"], required=True, metavar="NPZ", help="Codebook file to write (.npz)."),
        click.Option(["-k"], type=click.IntRange(min=1, max=MAX_CODEBOOK_WORDS), required=True,
                     help="Number of visual words."),
        click.Option(["--sample"], type=click.IntRange(min=1), default=100_000, show_default=True,
                     help="Descriptors kept in the seeded random sample (bounds memory: sample x 512 bytes)."),
        click.Option(["--seed"], type=int, default=0, show_default=True, help="Seed of sampling and k-means++."),
        click.Option(["--gmm"], is_flag=True, help="Also fit a diagonal-covariance GMM (Fisher vectors need one)."),
        *_resize_options(),
        click.Option(["--files-from", "files_from"], multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False, allow_dash=True), help="Read input paths from FILE."),
        click.Option(["-0", "--null"], is_flag=True, help="Paths on stdin / in list files are NUL-separated."),
        run["jobs"], run["max_pixels"], run["max_memory"],
        click.Option(["--overwrite"], is_flag=True, help="Replace an existing codebook."),
        click.Option(["-q", "--quiet"], is_flag=True, help="No progress bar and no summary line."),
        _config_option(),
    ], skip=encoding)
    return cmd


def _do_codebook(cls, params, *, inputs, output, k, sample, seed, gmm, resize, resize_mode, files_from, null,
                 overwrite, quiet, jobs, max_pixels, max_memory):
    """Read the descriptors through the engine (workers, --max-pixels, the memory budget),
    as featx extract reads images; JPEGs are decoded in full, as codebooks always were."""
    from ..encoding import save_codebook
    from ..learn import learn_codebook
    from ..plan import OutputPlan, Plan

    if not inputs and not files_from:
        raise UsageError("no inputs given", "name image files or folders, or - to read paths from stdin")
    if not str(output).lower().endswith(".npz"):  # (a zip named .jpg is taken for a photo by the next walk)
        raise UsageError(f"a codebook is an .npz archive, not {output!r}",
                         "end the name with .npz (e.g. -o sift-k256.codebook.npz)")
    from ..output.sinkbase import not_regular
    from ..output.atomic import same_file

    not_regular(output)   # a device, FIFO or socket is never replaced, even with --overwrite
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):  # (it was a traceback after all the learning)
        raise UsageError(f"output folder {folder} does not exist", "create it first")
    read = same_file(output, [a for a in [*inputs, *files_from] if a != "-"])
    if read is not None:
        raise UsageError(f"the codebook {output} is a file this run reads ({read})",
                         "name the codebook apart from its inputs; nothing was written")
    if os.path.exists(output) and not overwrite:
        raise UsageError(f"{output} already exists", "pass --overwrite to replace it")
    plan = Plan(outputs=(OutputPlan(cls.name, None, params=params, resize=resize, resize_mode=resize_mode),),
                inputs=inputs, files_from=files_from, null=null, jobs=jobs, max_pixels=max_pixels,
                max_memory=max_memory, exact_decode=True)
    show = _Shown(f"{cls.name} codebook", not quiet)
    with show:
        cb, result = learn_codebook(plan, k, sample=sample, seed=seed, gmm=gmm, on_note=_notes(show.say, quiet),
                                    on_failure=lambda f, outs: show.say(f"error: {quote_name(f.path)}: {printable(f.reason)}"),
                                    progress=show.progress, fork=_may_fork(click.get_current_context()))
    if cb is None:
        _say("interrupted: no codebook written")
        sys.exit(result.exit_code)
    save_codebook(cb, output)
    summary = result.outputs[0].summary
    failed = len(summary.failed) + len(summary.partial)
    if not quiet:
        _say(f"codebook of {k} words{' + GMM' if gmm else ''} -> {output}"
             + (f" ({failed} inputs failed)" if failed else ""))
    if failed:
        sys.exit(int(ExitCode.ITEMS_FAILED))


class _CodebookGroup(ExtractorGroup):
    """``featx codebook NAME``: only extractors with local descriptors (keypoints) can."""

    def list_commands(self, ctx):
        from .. import registry
        from ..codebook import supports_codebook

        out = []
        for n in registry.names():
            try:
                if supports_codebook(registry.get(n)):
                    out.append(n)
            except FeatxError:
                pass
        return out

    def usable(self, cls) -> str | None:
        from ..codebook import supports_codebook

        if not supports_codebook(cls):
            return f"{cls.name} has no local descriptors to learn a codebook from"
        return None

    commands_title = "Extractors with local descriptors"


codebook_cmd = _CodebookGroup(
    "codebook", build=_build_codebook, context_settings=CONTEXT,
    short_help="Learn visual words for --encode bovw|vlad|fisher.",
    help="Learn a codebook of visual words from local descriptors, for --encode bovw|vlad|fisher.\n\n"
         "\b\nExamples:\n"
         "  featx codebook sift train/ -k 256 -o sift-k256.codebook.npz\n"
         "  featx codebook sift train/ -k 64 --gmm -o sift-gmm64.codebook.npz\n"
         "  featx extract sift photos/ -o vlad.npy --encode vlad --codebook sift-k256.codebook.npz")
