#!/usr/bin/env python3
"""Deterministic tree and changes for bench/commit.sh.

The tree is a pure function of (seed, scale): the same arguments give
byte-identical trees on every machine, and the same change applied to two
copies of the tree (dm's working copy and a git repository) leaves them
identical again. Random bytes come from store_data.Keystream (openssl
AES-CTR, keyed by seed and a label).

  tree ROOT --seed S --scale F
        100,000 x F files summing to 2 GiB x F: all but 100 x F of them
        (at least 1) are small, 1-16 KiB (uniform), 100 to a directory
        (pNN/dNNN/fNNNNNN.dat); the rest are large (large/big-NNN.dat),
        sharing what is left of the bytes (about 12 MiB each, 0.5-1.5x the
        mean). Every other file (small and large alike) is random bytes
        (incompressible); the others are "text": keystream bytes mapped onto
        letters, spaces and newlines with skewed frequencies (about 4.2 bits
        a byte, so zstd or zlib halve it; no two blocks repeat, so nothing
        deduplicates).
  mutate-one ROOT --seed S --scale F --round R
        rewrites one small file, picked by seed and round, with new random
        bytes of the same size.
  mutate-bytes ROOT --seed S --scale F --round R --bytes B
        rewrites whole files, picked at random by seed and round among all
        files (so nearly all small), with new content of the same size and
        kind, until B bytes are rewritten (files larger than what is left of
        B are skipped).
Sizes never change, so the plan (paths and sizes) stays valid after changes.
Each prints one line "files=N bytes=B" (for tree also "large=L
large_bytes=LB"): files written and their bytes.
"""
import argparse
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from store_data import Keystream  # noqa: E402  (bench/store_data.py)

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
BLOCK = 1 * MiB

# 256 byte values -> letters, spaces and newlines with English-like skew.
_FREQ = "eeeeeeeeeeeeeeeeeeeetttttttttttttttaaaaaaaaaaaaaoooooooooooiiiiiiiiiiinnnnnnnnnnn" \
        "ssssssssssrrrrrrrrrhhhhhhhhhllllllldddddduuuuucccccmmmmmffffpppgggwwwyyybbvk" \
        "xjqz0123456789=:,."
_TABLE = (" " * 40 + "\n" * 6 + _FREQ * 4)[:256].encode()
assert len(_TABLE) == 256


class TextStream:
    """Compressible bytes: a keystream mapped through _TABLE."""

    def __init__(self, ks):
        self.ks = ks

    def read(self, n):
        return self.ks.read(n).translate(_TABLE)


def plan(seed, scale):
    """[(relative path, size, is_text)] for the tree, small files first."""
    nfiles = max(2, int(round(100000 * scale)))
    nlarge = max(1, int(round(100 * scale)))
    nsmall = nfiles - nlarge
    total = int(2 * GiB * scale)
    rng = random.Random("%s/commit/plan" % seed)
    files = []
    used = 0
    for i in range(nsmall):
        s = rng.randint(1 * KiB, 16 * KiB)
        files.append(("p%02d/d%03d/f%06d.dat" % (i // 10000, (i // 100) % 100, i), s, i % 2 == 0))
        used += s
    left = max(nlarge * 64 * KiB, total - used)
    w = [rng.uniform(0.5, 1.5) for _ in range(nlarge)]
    sw = sum(w)
    sizes = [int(left * x / sw) for x in w]
    sizes[-1] += left - sum(sizes)
    for j, s in enumerate(sizes):
        files.append(("large/big-%03d.dat" % j, s, j % 2 == 0))
    return files, nlarge


def write_file(path, size, src):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, BLOCK)
            f.write(src.read(n))
            left -= n


def gen_tree(root, seed, scale):
    files, nlarge = plan(seed, scale)
    ks = Keystream(seed, "commit/tree")
    txt = TextStream(ks)
    made = set()
    try:
        for rel, size, is_text in files:
            path = os.path.join(root, rel)
            d = os.path.dirname(path)
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
            write_file(path, size, txt if is_text else ks)
    finally:
        ks.close()
    lb = sum(s for _, s, _ in files[-nlarge:])
    print("files=%d bytes=%d large=%d large_bytes=%d" % (
        len(files), sum(s for _, s, _ in files), nlarge, lb))


def mutate_one(root, seed, scale, rnd):
    files, nlarge = plan(seed, scale)
    rel, size, _ = random.Random("%s/commit/one/%d" % (seed, rnd)).choice(files[:-nlarge])
    ks = Keystream(seed, "commit/one/%d" % rnd)
    try:
        write_file(os.path.join(root, rel), size, ks)
    finally:
        ks.close()
    print("files=1 bytes=%d" % size)


def mutate_bytes(root, seed, scale, rnd, nbytes):
    files, _ = plan(seed, scale)
    order = list(range(len(files)))
    random.Random("%s/commit/bytes/%d" % (seed, rnd)).shuffle(order)
    ks = Keystream(seed, "commit/bytes/%d" % rnd)
    txt = TextStream(ks)
    total = 0
    n = 0
    try:
        for k in order:
            if nbytes - total < 1 * KiB:
                break
            rel, size, is_text = files[k]
            if size > nbytes - total:
                continue
            write_file(os.path.join(root, rel), size, txt if is_text else ks)
            total += size
            n += 1
    finally:
        ks.close()
    print("files=%d bytes=%d" % (n, total))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["tree", "mutate-one", "mutate-bytes"])
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--bytes", type=int, default=0)
    a = ap.parse_args()
    if not 0 < a.scale <= 16:
        ap.error("--scale must be in (0, 16]")
    if a.mode == "tree":
        gen_tree(a.root, a.seed, a.scale)
    elif a.mode == "mutate-one":
        mutate_one(a.root, a.seed, a.scale, a.round)
    else:
        mutate_bytes(a.root, a.seed, a.scale, a.round, a.bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
