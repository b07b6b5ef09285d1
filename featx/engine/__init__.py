"""The engine: runs extractors over inputs and hands their rows to outputs.

* :mod:`.loop` — the run: which inputs to do, appending in order, commits, the end;
* :mod:`.worker` — decode, resize, extract, encode (in a worker process or in-process);
* :mod:`.executors` — where workers run (in-process, local processes; :mod:`.ray` for Ray);
* :mod:`.process` — worker process set-up (allocator, threads, start method);
* :mod:`.lifeline` — workers die with the run that started them;
* :mod:`.signals` — holding signals between two writes.

The outputs (sinks, state, lock, commits) are :mod:`featx.output`; what to read and how to
decode it, :mod:`featx.inputs`, :mod:`featx.decode` and :mod:`featx.items`.
"""
