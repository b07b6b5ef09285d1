"""Codebooks learnt through the engine: the descriptors of a run's inputs, read as
``featx extract`` reads them (workers, ``--max-pixels``, the memory budget, sampling),
fed in input order into a seeded reservoir sample, then k-means (and a GMM).

    plan = Plan(inputs=("train/",), outputs=(OutputPlan("sift", None, resize=(256, 192)),), jobs=2)
    codebook, result = learn_codebook(plan, 64, gmm=True)

The numbers do not depend on ``jobs``: rows reach the sample in input order.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import ExitCode, UsageError
from .plan import Plan, Result, execute


def learn_codebook(plan: Plan, k: int, *, sample: int = 100_000, seed: int = 0, gmm: bool = False,
                   on_failure: Callable[[Any, list[int]], None] | None = None,
                   on_note: Callable[[str], None] | None = None,
                   progress: Callable[[int | None, str], Any] | None = None,
                   fork: bool = False) -> tuple[Any, Result]:
    """Learn ``k`` visual words from the local descriptors of ``plan``'s inputs.

    ``plan`` has one in-memory output (path None): the extractor (with local
    descriptors, :func:`featx.codebook.supports_codebook`), its parameters and its
    ``resize``.  Returns ``(codebook, result)``; the codebook is None when the run was
    interrupted (``result.exit_code`` 130).  Inputs that fail are in the result's
    summary (and told to ``on_failure``), and the codebook is learnt from the others.
    ``on_failure``, ``on_note``, ``progress``, ``fork``: as for :func:`featx.plan.execute`.
    """
    from .codebook import ReservoirSampler, learn_codebook as learn, supports_codebook
    from .plan import extractor_class

    if len(plan.outputs) != 1 or plan.outputs[0].path is not None:
        raise UsageError("a codebook is learnt from one extractor's descriptors, kept in memory (path None)")
    out = plan.outputs[0]
    cls = extractor_class(out.extractor)
    if not supports_codebook(cls):
        raise UsageError(f"{cls.name} has no local descriptors to learn a codebook from",
                         "codebooks are for extractors with keypoint descriptors, such as sift")
    if out.params.get("encode") not in (None, "none"):
        raise UsageError("a codebook is learnt from raw descriptors: drop --encode")
    res = ReservoirSampler(max(int(sample), 1), seed=seed)
    result = execute(plan, on_failure=on_failure, on_note=on_note, progress=progress, fork=fork, descriptors=True,
                     on_row=lambda _k, _key, value: res.add(value))
    if result.exit_code not in (int(ExitCode.OK), int(ExitCode.ITEMS_FAILED)):
        return None, result
    cb = learn(res, k, sample=sample, seed=seed, gmm=gmm, extractor=cls.create(**out.params),
               metadata={"resize": list(out.resize) if out.resize else None, "resize_mode": out.resize_mode})
    return cb, result
