"""featx: classical computer-vision feature extraction.

The small Python API::

    import featx
    vec = featx.extract(image, "hog", cell_size=16)      # same numbers as the CLI
    img = featx.read_image("photo.jpg", "cnn")          # pixels as the CLI decodes them
    ext = featx.open_extractor("gradients", bins=12)    # build once, call many times
    featx.list_extractors()                             # names -> plugin status
    featx.run("features.toml")                          # a job (recipe), as `featx run` does
    featx.inspect_output("hog.npy")                     # what an output holds (`featx inspect`)
    featx.convert("hog.npy", "hog.csv")                 # another format, no recomputing
    featx.pool("clip.npy", "clip-mean.npy", stats="mean,max")   # one row per video (`featx pool`)
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "extract", "open_extractor", "list_extractors", "extract_files", "run", "read_image",
           "inspect_output", "convert", "pool"]


def __getattr__(name):  # keep `import featx` light: load the API on first use
    if name in ("extract", "open_extractor", "list_extractors", "extract_files", "run", "read_image",
                "inspect_output", "convert", "pool"):
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
