"""Coverage-guided fuzzing of ``Session.feed`` and ``Session.decode_datagram`` with atheris.

atheris (libFuzzer for Python) instruments the bytecode of ``ipfix_antrea`` as it is imported, so
that inputs reaching new branches of the decoder are kept and mutated further. The targets are in
``targets.py``; only :class:`~ipfix_antrea.DecodeError` may leave them. Any other exception (an
invariant check included) is a crash, an input running longer than ``-timeout`` seconds a hang;
libFuzzer writes either input to ``-artifact_prefix`` and exits non-zero.

    python3 tests/fuzz/fuzz_session.py stream|datagram [libFuzzer flags] CORPUS_DIR [SEED_DIR...]

e.g. ``-max_total_time=120 -timeout=10 -max_len=16384``. ``.ci/fuzz.sh`` builds the seeds
(``seeds.py``) and runs both targets; docs/library.md says how to run it by hand.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["ipfix_antrea"]):
    import ipfix_antrea  # noqa: F401  (every module of the package, instrumented)

import targets  # after the package: its imports of ipfix_antrea are the ones above


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in targets.TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(targets.TARGETS)} [libFuzzer flags] [dirs]")
    atheris.Setup([sys.argv[0], *sys.argv[2:]], targets.TARGETS[sys.argv[1]])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
