#!/usr/bin/env python3
"""Deterministic data sets and mutations for bench/store.sh.

Everything here is a pure function of (seed, scale, counts): the same
arguments give byte-identical trees on every machine, so two runs (or dm and
a peer in one run) always see the same data.

  mixed ROOT --seed S --scale F     2 GiB x F of mixed data:
        40% random bytes (AES-128-CTR keystream from openssl, keyed by seed),
        40% compressible text (log-like lines from a word list with numbers),
        20% duplicates (byte copies of files above under other names);
        each of random/text split 50% large files (64-256 MiB x F),
        35% medium (1-8 MiB), 15% small (1-256 KiB, log-uniform).
  small ROOT --seed S --count N     N files of 1-8 KiB in nested dirs,
        100 files per leaf dir, 100 leaf dirs per parent; half text, half random.
  mutate-small ROOT --seed S --round R --count N
        rewrites N files of ROOT (picked by seed and round) with new content
        of a new size (1-8 KiB).
  mutate-one ROOT --seed S --round R
        overwrites the first (up to) 4 KiB of one file of at most 64 KiB,
        picked by seed and round, in place: the smallest change a commit
        has to store.
  mutate-whole ROOT --seed S --bytes B
        rewrites whole files of at most 8 MiB, picked by seed, with new
        content of the same size, until B bytes are rewritten.
  mutate-spread ROOT --seed S --bytes B [--block K]
        overwrites B bytes in place as K-byte blocks (default 64 KiB) at
        random offsets of files picked in proportion to their size.
Each prints one line "files=N bytes=B touched_bytes=T": files written, bytes
of new content, and the total size of the files it touched.
"""
import argparse
import bisect
import hashlib
import math
import os
import random
import subprocess
import sys

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
BLOCK = 1 * MiB


class Keystream:
    """A deterministic stream of pseudo-random bytes from openssl AES-CTR."""

    def __init__(self, seed, label):
        key = hashlib.sha256(("%s/%s/key" % (seed, label)).encode()).hexdigest()[:32]
        iv = hashlib.sha256(("%s/%s/iv" % (seed, label)).encode()).hexdigest()[:32]
        self.proc = subprocess.Popen(
            ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-K", key, "-iv", iv,
             "-in", "/dev/zero"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=4 * MiB)

    def read(self, n):
        data = self.proc.stdout.read(n)
        if len(data) != n:
            raise RuntimeError("openssl keystream ended early")
        return data

    def close(self):
        self.proc.kill()
        self.proc.wait()


class Text:
    """Log-like text lines: compressible, but not a repetition of a few lines."""

    LEVELS = ["INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"]

    def __init__(self, seed, label):
        self.rng = random.Random("%s/%s/text" % (seed, label))
        wr = random.Random("%s/words" % seed)
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.words = ["".join(wr.choice(letters) for _ in range(wr.randint(2, 10)))
                      for _ in range(2000)]
        self.t = 1700000000 + self.rng.randrange(10 ** 7)

    def block(self, n):
        """About n bytes of whole lines (at least n)."""
        rng = self.rng
        words = self.words
        ch = rng.choices
        ri = rng.randrange
        out = []
        size = 0
        levels = self.LEVELS
        while size < n:
            self.t += ri(3)
            line = "%d %s %s %s %s id=%d value=%d.%02d %s\n" % (
                self.t, levels[ri(6)], *ch(words, k=3), ri(1000000), ri(10000), ri(100),
                " ".join(ch(words, k=ri(1, 8))))
            out.append(line)
            size += len(line)
        return "".join(out).encode()

    def read(self, n):
        data = self.block(n)
        return data[:n]


def write_file(path, size, src):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, BLOCK)
            f.write(src.read(n))
            left -= n


def plan_kind(rng, root, label, budget, scale):
    """Files for one content kind: list of (path, size)."""
    files = []
    large = int(budget * 0.50)
    medium = int(budget * 0.35)
    small = budget - large - medium
    # large: 64-256 MiB, scaled
    i = 0
    while large > 0:
        s = int(rng.randint(64 * MiB, 256 * MiB) * scale)
        s = max(1, min(s, large))
        files.append((os.path.join(root, label, "large", "big-%02d.dat" % i), s))
        large -= s
        i += 1
    i = 0
    while medium > 0:
        s = max(1, min(rng.randint(1 * MiB, 8 * MiB), medium))
        files.append((os.path.join(root, label, "medium", "m%02d" % (i // 100),
                                   "file-%04d.dat" % i), s))
        medium -= s
        i += 1
    i = 0
    lo, hi = math.log(1 * KiB), math.log(256 * KiB)
    while small > 0:
        s = max(1, min(int(math.exp(rng.uniform(lo, hi))), small))
        files.append((os.path.join(root, label, "small", "s%03d" % (i // 100),
                                   "f-%05d.dat" % i), s))
        small -= s
        i += 1
    return files


def gen_mixed(root, seed, scale):
    total = int(2 * GiB * scale)
    rng = random.Random("%s/mixed/plan" % seed)
    rnd_files = plan_kind(rng, root, "random", int(total * 0.4), scale)
    txt_files = plan_kind(rng, root, "text", int(total * 0.4), scale)
    ks = Keystream(seed, "mixed")
    tx = Text(seed, "mixed")
    try:
        for path, size in rnd_files:
            write_file(path, size, ks)
        for path, size in txt_files:
            write_file(path, size, tx)
    finally:
        ks.close()
    # duplicates: half of the budget picked in proportion to size (so large
    # files get copied too), half picked uniformly by count (many small ones)
    originals = rnd_files + txt_files
    cum = []
    acc = 0
    for _, s in originals:
        acc += s
        cum.append(acc)
    dup_budget = total - sum(s for _, s in originals)
    written = 0
    n = 0
    misses = 0
    while written < dup_budget and misses < 1000:
        if written < dup_budget // 2:
            k = bisect.bisect_right(cum, rng.randrange(acc))
        else:
            k = rng.randrange(len(originals))
        path, size = originals[k]
        if size > dup_budget - written:
            misses += 1
            continue
        dst = os.path.join(root, "dup", "d%03d" % (n // 100),
                           "copy-%05d-%s" % (n, os.path.basename(path)))
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(path, "rb") as fi, open(dst, "wb") as fo:
            while True:
                b = fi.read(BLOCK)
                if not b:
                    break
                fo.write(b)
        written += size
        n += 1
    nfiles = len(originals) + n
    print("files=%d bytes=%d" % (nfiles, sum(s for _, s in originals) + written))


def small_path(root, i):
    return os.path.join(root, "p%03d" % (i // 10000), "d%03d" % ((i // 100) % 100),
                        "f%05d.txt" % i)


def gen_small(root, seed, count):
    rng = random.Random("%s/small/plan" % seed)
    ks = Keystream(seed, "small")
    tx = Text(seed, "small")
    total = 0
    try:
        for i in range(count):
            size = rng.randint(1 * KiB, 8 * KiB)
            write_file(small_path(root, i), size, tx if i % 2 == 0 else ks)
            total += size
    finally:
        ks.close()
    print("files=%d bytes=%d" % (count, total))


def list_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            out.append(os.path.join(d, f))
    return out


def mutate_small(root, seed, rnd, count):
    files = list_files(root)
    rng = random.Random("%s/small/mutate/%d" % (seed, rnd))
    picked = rng.sample(files, min(count, len(files)))
    ks = Keystream(seed, "small-mutate-%d" % rnd)
    tx = Text(seed, "small-mutate-%d" % rnd)
    total = 0
    touched = 0
    try:
        for j, path in enumerate(picked):
            touched += os.path.getsize(path)
            size = rng.randint(1 * KiB, 8 * KiB)
            write_file(path, size, tx if j % 2 == 0 else ks)
            total += size
    finally:
        ks.close()
    print("files=%d bytes=%d touched_bytes=%d" % (len(picked), total, touched))


def mutate_one(root, seed, rnd):
    files = [(p, os.path.getsize(p)) for p in list_files(root)]
    cands = [(p, s) for p, s in files if 0 < s <= 64 * KiB]
    if not cands:
        raise SystemExit("no file of at most 64 KiB under %s" % root)
    path, size = random.Random("%s/mutate-one/%d" % (seed, rnd)).choice(cands)
    n = min(size, 4 * KiB)
    ks = Keystream(seed, "mutate-one-%d" % rnd)
    try:
        with open(path, "r+b") as f:
            f.write(ks.read(n))
    finally:
        ks.close()
    print("files=1 bytes=%d touched_bytes=%d" % (n, size))


def mutate_whole(root, seed, nbytes):
    files = [(p, os.path.getsize(p)) for p in list_files(root)]
    cands = [(p, s) for p, s in files if 0 < s <= 8 * MiB]
    rng = random.Random("%s/mixed/mutate-whole" % seed)
    rng.shuffle(cands)
    ks = Keystream(seed, "mixed-mutate-whole")
    total = 0
    n = 0
    try:
        for path, size in cands:
            if total >= nbytes:
                break
            if total + size > nbytes:
                continue
            write_file(path, size, ks)
            total += size
            n += 1
    finally:
        ks.close()
    print("files=%d bytes=%d touched_bytes=%d" % (n, total, total))


def mutate_spread(root, seed, nbytes, block):
    files = [(p, os.path.getsize(p)) for p in list_files(root)]
    files = [(p, s) for p, s in files if s > 0]
    cum = []
    acc = 0
    for _, s in files:
        acc += s
        cum.append(acc)
    rng = random.Random("%s/mixed/mutate-spread" % seed)
    ks = Keystream(seed, "mixed-mutate-spread")
    total = 0
    touched = set()
    try:
        while total < nbytes:
            k = bisect.bisect_right(cum, rng.randrange(acc))
            path, size = files[k]
            n = min(block, size, nbytes - total)
            off = rng.randrange(size - n + 1)
            with open(path, "r+b") as f:
                f.seek(off)
                f.write(ks.read(n))
            total += n
            touched.add(k)
    finally:
        ks.close()
    print("files=%d bytes=%d touched_bytes=%d" % (
        len(touched), total, sum(files[k][1] for k in touched)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["mixed", "small", "mutate-small", "mutate-one", "mutate-whole",
                                     "mutate-spread"])
    ap.add_argument("root")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=100000)
    ap.add_argument("--round", type=int, default=0)
    ap.add_argument("--bytes", type=int, default=0)
    ap.add_argument("--block", type=int, default=64 * KiB)
    a = ap.parse_args()
    if a.mode == "mixed":
        gen_mixed(a.root, a.seed, a.scale)
    elif a.mode == "small":
        gen_small(a.root, a.seed, a.count)
    elif a.mode == "mutate-small":
        mutate_small(a.root, a.seed, a.round, a.count)
    elif a.mode == "mutate-one":
        mutate_one(a.root, a.seed, a.round)
    elif a.mode == "mutate-whole":
        mutate_whole(a.root, a.seed, a.bytes)
    else:
        mutate_spread(a.root, a.seed, a.bytes, a.block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
