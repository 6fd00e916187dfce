"""python-ipfix (PyPI `ipfix`, 0.9.7) as a file decoder for bench_peers.py: IPFIX file in, JSON Lines out.

What a user of python-ipfix gets without teaching it anything: the IANA and RFC 5103 registries
(`use_iana_default`, `use_5103_default`), then `reader.from_stream(...).namedict_iterator()` over
every record. Elements it does not know (Antrea's PEN 56506) come out under names like
`_ipfix_56506_101` with their raw octets, which are written as hex. Values that are not JSON
types (datetime, addresses, bytes) are written as text, so the output is one JSON object per
record like ipfix-collect's. The record count goes to stderr as "records N".

    python benchmarks/pyipfix_dump.py FILE --out OUT.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys


def _text(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return value.hex()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("file")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)

    import ipfix.ie
    import ipfix.reader

    ipfix.ie.use_iana_default()
    ipfix.ie.use_5103_default()
    n = 0
    dumps = json.JSONEncoder(default=_text, separators=(",", ":")).encode
    with open(args.file, "rb") as f, open(args.out, "w") as out:
        for record in ipfix.reader.from_stream(f).namedict_iterator():
            out.write(dumps(record))
            out.write("\n")
            n += 1
    print(f"records {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
