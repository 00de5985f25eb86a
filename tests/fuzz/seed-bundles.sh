#!/bin/sh
# Writes a few small valid bundles into $1, as seeds for fuzz_bundle.
set -eu
out=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
mkdir -p "$d/b/out/sub"
printf 'api = 1;\nname = "seed";\ncommand = ["./run"];\noutputs = ["out/"];\n' > "$d/b/job.conf"
printf '#!/bin/sh\necho hi\n' > "$d/b/run"
chmod 755 "$d/b/run"
echo data > "$d/b/out/sub/file"
# A name over 100 bytes: GNU 'L' and pax 'path' headers in the seeds.
echo long > "$d/b/out/$(printf '%120s' '' | tr ' ' n)"
ln -s run "$d/b/link"
ln "$d/b/run" "$d/b/hard"
(cd "$d/b" && tar --format=pax -cf "$out/seed-pax.tar" job.conf run out link hard)
(cd "$d/b" && tar --format=gnu -czf "$out/seed-gnu.tar.gz" job.conf run out link)
(cd "$d/b" && tar --format=ustar -cf - job.conf run | xz -c > "$out/seed-ustar.tar.xz")
if command -v zstd >/dev/null 2>&1; then
    (cd "$d/b" && tar --format=pax -cf - job.conf run out | zstd -q -c > "$out/seed.tar.zst")
fi
if command -v bzip2 >/dev/null 2>&1; then
    (cd "$d/b" && tar -cf - job.conf run | bzip2 -c > "$out/seed.tar.bz2")
fi
