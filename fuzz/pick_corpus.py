"""Picks at most CAP fuzz-found inputs that add the most coverage to the seeds.

Usage (from fuzz/, after a run that wrote to /tmp/fz/<target>):
    B=target/x86_64-unknown-linux-gnu/release
    mkdir /tmp/min && cp corpus/<target>/* /tmp/min/
    $B/<target> -merge=1 -use_counters=0 -use_cmp=0 -merge_control_file=/tmp/ctl /tmp/min /tmp/fz/<target>
    python3 pick_corpus.py /tmp/ctl corpus/<target> 35

Reads libFuzzer's merge control file (the files of both corpora and the edges each one covers),
starts from the edges of the first corpus (the seeds), and greedily adds the file that covers
the most new edges (the smaller on ties) until CAP files or no gain; copies them, named by
SHA-1, into OUTDIR.
"""
import sys, os, shutil, hashlib
ctl, outdir, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(ctl, errors='replace').read().split('\n')
n, nfirst = int(lines[0]), int(lines[1])
paths = lines[2:2+n]
cov, size = {}, {}
for l in lines[2+n:]:
    p = l.split()
    if not p: continue
    if p[0] == 'COV': cov[int(p[1])] = set(map(int, p[2:]))
    if p[0] == 'STARTED': size[int(p[1])] = int(p[2])
have = set()
for i in range(nfirst): have |= cov.get(i, set())
base = len(have)
cands = [i for i in range(nfirst, n) if i in cov]
chosen = []
while len(chosen) < cap:
    best = max(cands, key=lambda i: (len(cov[i] - have), -size.get(i, 0)), default=None)
    if best is None or not (cov[best] - have): break
    chosen.append(best); have |= cov[best]; cands.remove(best)
total = set().union(*cov.values())
print(f"seeds cover {base} edges; +{len(chosen)} files -> {len(have)} of {len(total)} edges seen in the run")
for i in chosen:
    data = open(paths[i], 'rb').read()
    shutil.copy(paths[i], os.path.join(outdir, hashlib.sha1(data).hexdigest()))
