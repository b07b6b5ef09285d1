"""``featx info NAME``: what an extractor computes, its parameters, its output size, and
its settings as a config file (``--as-config``)."""
from __future__ import annotations


import click

from ..errors import FeatxError
from ..doctext import value_text
from .options import CONTEXT, SIZE, ExtractorGroup, _Described, _resize_options, _split_params, _with_extractor_options
from .report import _fail


def _build_info(cls) -> click.Command:
    def callback(size, resize, resize_mode, as_config, **kwargs):
        ctx = click.get_current_context()
        given = _split_params(cls, kwargs)
        try:
            from ..extractor import build_params

            ext = _Described.of(cls, build_params(cls, given))
            if as_config:
                click.echo(_info_config(cls, ext, resize, resize_mode), nl=False)
            else:
                click.echo(_info_text(cls, ext, size, resize, ctx))
        except FeatxError as exc:
            _fail(exc, ctx)

    cmd = click.Command(
        cls.name, callback=callback, context_settings=CONTEXT, short_help=cls.summary,
        help=f"Describe {cls.name}: what it computes, its parameters and its output size. "
             f"{cls.name}'s parameters are options here as in `featx extract {cls.name}`, so the "
             "output size and the config file are those of these settings.",
        epilog=f"\b\nExamples:\n  featx info {cls.name}\n  featx info {cls.name} --size 640x480\n"
               f"  featx info {cls.name} --as-config --resize 256x256 > {cls.name}.toml")
    cmd.params = _with_extractor_options(cls, [
        click.Option(["--size"], type=SIZE, default=None, metavar="WxH",
                     help="Give the output size for an input image of WIDTHxHEIGHT."),
        *_resize_options(),
        click.Option(["--as-config"], is_flag=True,
                     help="Print these settings as a config file for `--config` instead (with --resize "
                          "when given, and always for an extractor whose vector length depends on "
                          "the image size)."),
    ])
    return cmd


def _info_text(cls, ext, size, resize, ctx) -> str:
    import shutil
    import textwrap

    from ..doctext import plain
    from ..extractor import param_infos

    infos = param_infos(cls.Params)
    width = min(100, max(60, shutil.get_terminal_size((100, 24)).columns))
    lines = [f"{cls.name}: {cls.summary}"]
    doc = plain(cls.__doc__, [p.name for p in infos], [c for p in infos for c in (p.choices or ())])
    if doc:
        lines.append("")
        lines += [("  " + line) if line else "" for line in doc.splitlines()]
    lines.append("")
    lines.append(f"Parameters (options of `featx extract {cls.name}`; keys of a --config file):")
    kinds = {int: "integer", float: "number", str: "text", bool: "on/off"}
    rows = []
    for p in infos:
        kind = p.pair_form if p.type is tuple else ("choice" if p.choices else kinds[p.type])
        value = getattr(ext.params, p.name)
        shown = value_text(value)
        if value != p.default:
            shown += f" (default {value_text(p.default)})"
        rng = "" if p.choices and len(", ".join(map(str, p.choices))) > 40 else p.describe_range()
        help_text = p.help + (" (used by `featx show` only)" if p.show_only and "featx show" not in p.help
                              else "")
        if p.choices and not rng:
            help_text += " One of " + ", ".join(map(str, p.choices)) + "."
        rows.append((p.option, kind, shown, rng, help_text))
    w_opt = max(len(r[0]) for r in rows) if rows else 0
    w_kind = max(len(r[1]) for r in rows) if rows else 0
    w_val = max(len(r[2]) for r in rows) if rows else 0
    for opt, kind, shown, rng, help_text in rows:
        lines.append(f"  {opt:<{w_opt}}  {kind:<{w_kind}}  {shown:<{w_val}}  {rng}".rstrip())
        lines += textwrap.wrap(help_text, width - 6, initial_indent="      ", subsequent_indent="      ")
    if not rows:
        lines.append("  (none)")
    lines.append("")
    lines.append("Output:")
    for line in _describe_output(cls, ext, size, resize):
        lines += textwrap.wrap(line, width - 2, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def _describe_output(cls, ext, size, resize) -> list[str]:
    """What one image gives, in words (``N keypoints x 128``, not ``(None, 128)``)."""
    work = resize or size  # the size the extractor sees
    w, h = work or (640, 480)
    at = f"for {size[0]}x{size[1]} images resized to {w}x{h}" if size and resize and size != resize \
        else f"for {w}x{h} images"
    spec = ext.output_spec(h, w)
    if spec.kind == "vector":
        fixed = ext.output_spec(240, 320).shape == ext.output_spec(480, 640).shape
        if fixed:
            return [f"a vector of {spec.length} float32 values per image, whatever its size"]
        out = [f"a vector of {spec.length} float32 values {at}; its length depends on the image size"]
        if not work:
            out.append(f"(`featx info {cls.name} --size WxH` gives it for another size; resize the images "
                       "to one size, --resize WxH, to stack them in one .npy or .csv)")
        return out
    if spec.kind == "keypoints":
        d = spec.shape[1]
        return [f"N keypoints x {d} per image (N depends on the image): each keypoint has x, y, size, "
                f"angle, response and octave, and a descriptor of {d} values",
                "(write them to a folder, -o DIR/, or encode them into one vector per image: --encode)"]
    if spec.kind == "dense":
        dims = " x ".join(str(int(v)) for v in spec.shape)
        what = "rows x columns x channels" if len(spec.shape) == 3 else "rows x columns"
        return [f"a map of {dims} float32 values ({what}) per image {at}",
                "(write maps to a folder: -o DIR/)"]
    if spec.kind == "regions":
        return ["boxes x, y, w, h in the image's pixels, one CSV row per region"]
    return [f"{spec.kind} of {' x '.join(map(str, spec.shape))}"]


#: The size written into `featx info --as-config` for an extractor whose vector length
#: depends on the image size, when no --resize is given: images must be brought to one
#: size to be stacked, and the README's examples use this one.
DEFAULT_CONFIG_RESIZE = (256, 256)


def _info_config(cls, ext, resize, resize_mode) -> str:
    """A config file for ``featx extract NAME --config FILE`` with these settings,
    which runs as written on a folder of photos of several sizes."""
    from ..extractor import params_to_toml

    text = (f"# featx {cls.name}: featx extract {cls.name} INPUTS... -o OUTPUT --config FILE\n"
            "# Keys are the options' names; options given on the command line win.\n")
    text += params_to_toml(ext.params, table=cls.name)
    fixed = True
    try:
        spec = ext.output_spec(480, 640)
        fixed = spec.kind != "vector" or ext.output_spec(240, 320).shape == spec.shape
    except FeatxError:
        fixed = False
    if resize is None and not fixed:
        resize = DEFAULT_CONFIG_RESIZE
        text += (f"# {cls.name}'s vector length depends on the image size: every image is resized to "
                 "this WIDTHxHEIGHT first, so that all vectors have one length.\n")
    else:
        text += "# Resize every image to WIDTHxHEIGHT first (optional).\n"
    if resize is None:
        text += '# resize = "256x256"\n'
    else:
        text += f'resize = "{resize[0]}x{resize[1]}"\n'
    text += ("# How --resize fits: stretch each axis, or scale the shorter side and cut the centre.\n"
             f'resize-mode = "{resize_mode}"\n')
    return text


class _InfoGroup(ExtractorGroup):
    """``featx info NAME``; a NAME that is an output file or folder (``featx info emb.npy``)
    is pointed to ``featx inspect``."""

    def get_command(self, ctx, name):
        import os

        from .. import registry
        from ..errors import UsageError

        if "+" not in name and name not in registry.names() and (
                os.path.exists(name) or name.lower().endswith((".npy", ".csv", ".parquet", ".json"))
                or os.sep in name):
            exc = UsageError(f"{name} is not an extractor" + (": it is a file or folder" if os.path.exists(name)
                                                              else ""),
                             f"featx info describes extractors (featx list names them); to see what an "
                             f"output holds: featx inspect {name}")
            if ctx.resilient_parsing:
                return None
            _fail(exc, ctx)
        return super().get_command(ctx, name)


info_cmd = _InfoGroup(
    "info", build=_build_info, show_params=True, context_settings=CONTEXT,
    short_help="Describe an extractor: parameters, output size, config file.",
    help="Describe one extractor: what it computes, its parameters (type, default, range) and "
         "the size of its output; NAME's parameters are options here too.\n\n"
         "\b\nExamples:\n"
         "  featx info hog                                  what hog computes, its parameters\n"
         "  featx info hog --cell-size 16 --size 640x480    vector length for these settings\n"
         "  featx info hog --as-config > hog.toml           a config file to edit, for --config")
