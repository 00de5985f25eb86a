#!/usr/bin/env python3
"""mkhostile.py OUTDIR SENTINEL: writes hostile bundles for
tests/bundle-hostile.sh into OUTDIR, and OUTDIR/cases with one line per
bundle: FILE<TAB>TEXT THE REFUSAL MUST CONTAIN<TAB>DESCRIPTION.

SENTINEL is an absolute directory outside the extraction target; the
absolute-path and symlink cases aim at it, so that an escape would show
as a change there.  Bundles that must be accepted (setuid bits, foreign
owners, sparse files, long names in pax or GNU headers) are written too."""
import bz2
import gzip
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile

OUT, SENTINEL = sys.argv[1], sys.argv[2]
CONF = b'api = 1;\nname = "hostile";\ncommand = ["./run"];\n'
MIB = 1024 * 1024
cases = []
accepted = []


class Zeros(io.RawIOBase):
    """n zero bytes, without holding them in memory."""

    def __init__(self, n):
        self.left = n

    def readable(self):
        return True

    def readinto(self, b):
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def info(name, type_=tarfile.REGTYPE, size=0, mode=0o644, **kw):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode = type_, size, mode
    ti.mtime = 1700000000
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def f(name, data=b"x", **kw):
    return (info(name, size=len(data), **kw), io.BytesIO(data))


def big(name, n):
    return (info(name, size=n), Zeros(n))


def d(name):
    return (info(name, tarfile.DIRTYPE, mode=0o755), None)


def sym(name, target):
    return (info(name, tarfile.SYMTYPE, linkname=target, mode=0o777), None)


def hard(name, target):
    return (info(name, tarfile.LNKTYPE, linkname=target), None)


def dev(name, type_):
    return (info(name, type_, devmajor=1, devminor=3), None)


def conf(data=CONF):
    return f("job.conf", data)


def sparse(name, realsize, chunks):
    """A PAX 1.0 GNU sparse entry: a map block, then the chunks' data."""
    m = b"%d\n" % len(chunks)
    for off, n in chunks:
        m += b"%d\n%d\n" % (off, n)
    m += bytes(-len(m) % 512)
    data = m + b"".join(b"s" * n for _, n in chunks)
    ti = info("GNUSparseFile.0/" + name, size=len(data))
    ti.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                      "GNU.sparse.name": name,
                      "GNU.sparse.realsize": str(realsize)}
    return (ti, io.BytesIO(data))


def tar_bytes(entries, fmt=tarfile.PAX_FORMAT, pax_headers=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8",
                      errors="surrogateescape", pax_headers=pax_headers) as t:
        for ti, data in entries:
            t.addfile(ti, data)
    return buf.getvalue()


def header(ti, fmt=tarfile.USTAR_FORMAT):
    """One entry's header block(s), without data or end-of-archive blocks."""
    return ti.tobuf(fmt, "utf-8", "surrogateescape")


def padded(data):
    return data + bytes(-len(data) % 512)


def checksummed(h):
    """A header block with its checksum computed again after an edit."""
    h = bytearray(h)
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def compress(raw, comp):
    if comp == "gz":
        return gzip.compress(raw, 6, mtime=0)
    if comp == "bz2":
        return bz2.compress(raw, 9)
    if comp == "xz":
        return lzma.compress(raw)
    if comp == "zst":
        return subprocess.run(["zstd", "-q", "-19", "-c"], input=raw,
                              stdout=subprocess.PIPE, check=True).stdout
    return raw


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as fh:
        fh.write(data)


def case(name, expect, desc, entries, comp="", fmt=tarfile.PAX_FORMAT):
    file = name + ".tar" + ("." + comp if comp else "")
    write(file, compress(tar_bytes(entries, fmt), comp))
    cases.append((file, expect, desc))


def raw_case(file, expect, desc, data):
    write(file, data)
    cases.append((file, expect, desc))


# -- paths -------------------------------------------------------------------
case("dotdot", "entry '../x'", "../ traversal", [conf(), f("../x")])
case("dotdot-mid", "entry 'a/../../x'", "a/../../x", [conf(), f("a/../../x")])
case("dotdot-end", "entry 'a/../'", "a name ending in ..", [conf(), d("a/..")])
case("absolute", "absolute path", "absolute path into the sentinel",
     [conf(), f(SENTINEL + "/abs-x")])
case("absolute-etc", "entry '/etc/surplus-hostile'", "absolute /etc path",
     [conf(), f("/etc/surplus-hostile")])
case("double-slash", "entry '//x'", "//x", [conf(), f("//x")])
case("deep", "deeper than 64", "65 components",
     [conf(), f("d/" * 64 + "f")])
case("long-path", "longer than 1024", "1025-byte path",
     [conf(), f(("p" * 200 + "/") * 5 + "p" * 20)])
case("long-component", "component longer than 255", "256-byte component",
     [conf(), f("c" * 256)])
case("newline", "entry 'bad\\x0aname'", "newline in a name",
     [conf(), f("bad\nname")])
case("invalid-utf8", "entry 'bad\\xffname'", "invalid UTF-8 name",
     [conf(), f("bad\udcffname")], fmt=tarfile.GNU_FORMAT)
case("overlong-utf8", "not valid UTF-8", "overlong UTF-8 for '/'",
     [conf(), f("a\udcc0\udcafb")], fmt=tarfile.GNU_FORMAT)

# -- symlinks ----------------------------------------------------------------
# A symlink may lead anywhere (it is never followed on the host), but no
# entry may be written through one.
case("symlink-abs-then-file", "entry 'l/x': path goes through symlink 'l'",
     "symlink to an absolute directory, then a file through it",
     [conf(), sym("l", SENTINEL), f("l/x")])
case("symlink-etc", "entry 'etc/surplus-hostile': path goes through symlink",
     "symlink to /etc then a file in it",
     [conf(), sym("etc", "/etc"), f("etc/surplus-hostile")])
case("symlink-up-then-dir", "entry 'l/d/': path goes through symlink 'l'",
     "symlink ../../.. then a dir through it",
     [conf(), sym("l", "../../.."), d("l/d"), f("l/d/x")])
case("symlink-up-then-hardlink", "entry 'l/h': path goes through symlink",
     "symlink leading outside, then a hard link through it",
     [conf(), f("a"), sym("l", "../../sentinel"), hard("l/h", "a")])
case("symlink-abs-then-dir-entry", "entry 'l/': duplicate entry",
     "symlink to the sentinel, then a directory of the same name",
     [conf(), sym("l", SENTINEL), d("l/"), d("l/new")])
case("through-symlink", "goes through symlink",
     "a file written through an earlier (inside) symlink",
     [conf(), d("sub"), sym("l", "sub"), f("l/x")])
case("through-file", "goes through regular file", "a path below a file",
     [conf(), f("f"), f("f/x")])

# -- hard links --------------------------------------------------------------
case("hardlink-passwd", "entry 'h'", "hardlink to /etc/passwd",
     [conf(), hard("h", "/etc/passwd")])
case("hardlink-sentinel", "entry 'h'", "hardlink to a sentinel file",
     [conf(), hard("h", SENTINEL + "/secret")])
case("hardlink-up", "entry 'h'", "hardlink to ../x", [conf(), hard("h", "../x")])
case("hardlink-via-symlink", "entry 'h'", "hardlink through an earlier symlink",
     [conf(), d("sub"), f("sub/f"), sym("l", "sub"), hard("h", "l/f")])
case("hardlink-later", "not an earlier entry", "hardlink to a later entry",
     [conf(), hard("h", "later"), f("later")])
case("hardlink-dir", "not a regular file", "hardlink to a directory",
     [conf(), d("d"), hard("h", "d")])

# -- duplicates ----------------------------------------------------------------
case("dir-symlink-same-name", "entry 'd'",
     "dir, then a symlink of the same name, then a file under it",
     [conf(), d("d"), sym("d", SENTINEL), f("d/x")])
case("dup-file-symlink-file", "duplicate entry",
     "duplicate file/symlink/file",
     [conf(), f("f"), sym("f", SENTINEL + "/secret"), f("f", b"overwrite")])
case("dup-dot-slash", "entry './a'", "'a' and './a' are the same entry",
     [conf(), f("a"), f("./a")])

# -- types -------------------------------------------------------------------
case("chardev", "character device", "character device",
     [conf(), dev("null0", tarfile.CHRTYPE)])
case("blockdev", "block device", "block device",
     [conf(), dev("sda0", tarfile.BLKTYPE)])
case("fifo", "entry 'pipe'", "fifo", [conf(), (info("pipe", tarfile.FIFOTYPE), None)])
# Type bytes tar does not define, or that only some tars know: libarchive
# reads most as regular files, reads 'X' (Solaris) as pax attributes for
# the next entry, 'A' as a Solaris ACL for it, and skips 'V'.
case("type-x", "entry 'odd-x': unknown tar entry type 'X'",
     "unknown type 'X' (Solaris extended header)",
     [conf(), f("odd-x", b"31 path=renamed-by-an-x-header\n", type_=b"X"),
      f("plain")])
case("type-vendor-a", "entry 'acl-a': unknown tar entry type 'A'",
     "vendor type 'A' (Solaris ACL)",
     [conf(), f("acl-a", b"01000003\0user::rwx,group::r--,other::r--\0",
                type_=b"A"), f("plain")])
case("type-volume", "entry 'volume-label': unknown tar entry type 'V'",
     "GNU volume header 'V'",
     [(info("volume-label", b"V"), None), conf()], fmt=tarfile.GNU_FORMAT)
case("type-multivolume", "entry 'continued': unknown tar entry type 'M'",
     "GNU multivolume continuation 'M'",
     [conf(), f("continued", b"the rest of a file", type_=b"M")],
     fmt=tarfile.GNU_FORMAT)
case("type-pax-named", "entry '" + "n" * 120 + "': unknown tar entry type '9'",
     "unknown type '9' named by a pax header",
     [conf(), f("n" * 120, b"nine", type_=b"9")])
case("type-gnu-named", "entry '" + "g" * 120 + "': unknown tar entry type 'Z'",
     "unknown type 'Z' named by a GNU longname",
     [conf(), f("g" * 120, b"zed", type_=b"Z")], fmt=tarfile.GNU_FORMAT)
# Headers that libarchive finds where a reader going by size fields would
# see data: each must be checked all the same.
hidden = header(info("hidden", b"Z"))
case("hidden-by-dir", "entry 'hidden': unknown tar entry type 'Z'",
     "unknown type behind a directory's size field",
     [conf(), (info("d", tarfile.DIRTYPE, size=512, mode=0o755),
               io.BytesIO(hidden))], fmt=tarfile.USTAR_FORMAT)
case("hidden-by-hardlink", "entry 'hidden': unknown tar entry type 'Z'",
     "unknown type behind a ustar hard link's size field",
     [conf(), f("a"), (info("h", tarfile.LNKTYPE, size=512, linkname="a"),
                       io.BytesIO(hidden))], fmt=tarfile.USTAR_FORMAT)
case("hidden-by-slash", "entry 'hidden': unknown tar entry type 'Z'",
     "unknown type inside a 'regular file' named with a trailing /",
     [conf(), (info("looks-like-a-dir/", size=1024),
               io.BytesIO(hidden + bytes(512)))], fmt=tarfile.USTAR_FORMAT)
# An old GNU sparse entry whose map holds less than its size field: the
# next header libarchive reads is one a size-field reader sees as data.
sp = bytearray(header(info("sp", b"S", size=1024), tarfile.GNU_FORMAT))
sp[386:410] = b"00000000000\0" b"00000000144\0"   # 100 bytes at offset 0
sp[483:495] = b"00000002000\0"                    # real size 1 KiB
data = bytearray(1024)
data[100:612] = header(info("misplaced"), tarfile.GNU_FORMAT)
raw_case("sparse-map-short.tar", "entry 'misplaced': ambiguous tar archive",
         "a header only a sparse-map reader finds",
         header(info("job.conf", size=len(CONF)), tarfile.GNU_FORMAT) +
         padded(CONF) + checksummed(sp) + bytes(data) + bytes(1024))

# -- sizes ---------------------------------------------------------------------
case("bomb-gzip", "ratio", "gzip bomb (ratio)", [conf(), big("zeros", 60 * MIB)], "gz")
case("bomb-xz", "ratio", "xz bomb (ratio)", [conf(), big("zeros", 60 * MIB)], "xz")
case("bomb-bzip2", "ratio", "bzip2 bomb (ratio)",
     [conf(), big("zeros", 60 * MIB)], "bz2")
if shutil.which("zstd"):
    case("bomb-zstd", "ratio", "zstd bomb (ratio)",
         [conf(), big("zeros", 60 * MIB)], "zst")
case("bomb-size", "max_unpacked_bytes", "over max_unpacked_bytes",
     [conf(), big("huge", 65 * MIB)], "gz")
case("many-entries", "max_entries", "too many entries",
     [conf()] + [f("f%03d" % i) for i in range(150)])
case("sparse-giant", "entry 'giant'", "sparse entry declaring 1 EiB",
     [conf(), sparse("giant", 1 << 60, [((1 << 60) - 1, 1)])])
case("sparse-outside", "past its declared size", "sparse data past the size",
     [conf(), sparse("odd", 10, [(100, 1)])])
write("nested.tar.gz", gzip.compress(lzma.compress(tar_bytes([conf()])), mtime=0))
cases.append(("nested.tar.gz", "compressed more than once", "xz inside gzip"))

# -- broken archives -----------------------------------------------------------
whole = gzip.compress(tar_bytes([conf(), f("noise", os.urandom(256 * 1024))]),
                      mtime=0)
raw_case("truncated.tar.gz", "entry 'noise'", "truncated archive",
         whole[:len(whole) // 2])
raw_case("garbage.tar.gz", "not a tar archive", "garbage bytes",
         os.urandom(8192))
raw_case("empty.tar", "not a tar archive", "an empty file", b"")
damaged = bytearray(tar_bytes([conf(), f("second", b"y" * 100)]))
second = damaged.index(b"second")
damaged[second + 148:second + 156] = b"0000000\0"  # a wrong checksum
raw_case("bad-checksum.tar", "Damaged tar archive", "wrong header checksum",
         bytes(damaged))
zbuf = io.BytesIO()
with zipfile.ZipFile(zbuf, "w") as z:
    z.writestr("job.conf", CONF)
raw_case("zip.tar.gz", "zip archive", "a zip renamed .tar.gz", zbuf.getvalue())
raw_case("rar.tar.gz", "RAR archive", "a RAR header renamed .tar.gz",
         b"Rar!\x1a\x07\x01\x00" + os.urandom(512))
raw_case("7z.tar.gz", "7z archive", "a 7z header renamed .tar.gz",
         b"7z\xbc\xaf\x27\x1c\x00\x04" + os.urandom(512))

# -- job.conf ------------------------------------------------------------------
case("conf-symlink", "job.conf must be a regular file", "job.conf as a symlink",
     [f("real.conf", CONF), sym("job.conf", "real.conf")])
case("conf-hardlink", "job.conf must be a regular file", "job.conf as a hardlink",
     [f("real.conf", CONF), hard("job.conf", "real.conf")])
case("conf-dir", "job.conf must be a regular file", "job.conf as a directory",
     [d("job.conf"), f("job.conf/x")])
case("conf-missing", "no job.conf", "no job.conf", [f("run", b"#!/bin/sh\n")])
case("conf-nested", "no job.conf at the root of the bundle (found sub/job.conf",
     "job.conf only below the root, beside other entries",
     [f("sub/job.conf", CONF), f("other")])
case("conf-in-dir", "no job.conf at the root of the bundle: found myjob/job.conf: "
     "pack the directory's contents, e.g. `surplus bundle create myjob`",
     "the directory packed instead of its contents (tar czf job.tgz myjob/)",
     [d("myjob/"), f("myjob/job.conf", CONF), f("myjob/run")], "gz")
case("conf-in-dot-dir", "found myjob/job.conf: pack the directory's contents",
     "the directory packed as ./myjob",
     [d("./myjob/"), f("./myjob/job.conf", CONF)])
case("conf-deeper", "no job.conf at the root of the bundle",
     "job.conf two levels down", [f("a/b/job.conf", CONF)])
case("manifest-unknown", "colour", "manifest with an unknown field",
     [conf(CONF + b'colour = "red";\n')])
case("manifest-no-command", "command", "manifest without a command",
     [conf(b'api = 1;\nname = "x";\n')])
case("manifest-gpus", "resources.gpus", "gpus out of range",
     [conf(CONF + b"resources = { gpus = 100000; };\n")])

# -- accepted, with what extraction must do ------------------------------------
write("setuid.tar", tar_bytes([conf(), f("suid", b"#!/bin/sh\n", mode=0o6755),
                                f("sticky", b"s", mode=0o1777),
                                f("plain", b"p", mode=0o666),
                                d("tmp")]))
write("owners.tar", tar_bytes([conf(), f("rootfile", b"r", uid=0, gid=0),
                                f("other", b"o", uid=4242, gid=4242,
                                  uname="mallory", gname="mallory")]))
write("sparse-ok.tar", tar_bytes([conf(),
                                   sparse("holes", 10 * MIB,
                                          [(5 * MIB, 4096),
                                           (10 * MIB - 1, 1)])]))
# Links whose targets leave the bundle, absolute or through "..", loop or
# chase other links: extracted as links, never followed.
write("links-outside-ok.tar", tar_bytes([
    conf(), sym("evil", "../../sentinel/secret"), sym("abs", SENTINEL),
    sym("etc", "/etc"), d("d"), sym("d/l", ".."), sym("m", "d/l/.."),
    sym("n", "d/x/.."), sym("d/x", ".."), sym("loop", "loop"),
    d("venv/bin"), sym("venv/bin/python3", "/usr/bin/python3"),
    sym("venv/bin/python", "python3")]))
write("links-ok.tar.xz", compress(tar_bytes([
    conf(), d("lib"), f("lib/a.so.1", b"elf"), sym("lib/a.so", "a.so.1"),
    sym("top", "lib/../lib/a.so"), hard("lib/copy", "lib/a.so.1"),
    f("./x/y/z", b"implied dirs"), d("x/")]), "xz"))

# Long names and link targets, through pax 'x' headers (with a global 'g'
# header first) and through GNU 'L' and 'K' headers.
LONG_DIR = "d" * 120
LONG_FILE = LONG_DIR + "/" + "f" * 130
LONG_LINK = "l" * 110
for name, fmt, pax in (("pax-long-ok.tar", tarfile.PAX_FORMAT,
                        {"comment": "global header"}),
                       ("gnu-long-ok.tar.gz", tarfile.GNU_FORMAT, None)):
    raw = tar_bytes([conf(), d(LONG_DIR), f(LONG_FILE, b"long name"),
                     sym(LONG_LINK, LONG_FILE)], fmt, pax)
    write(name, compress(raw, "gz" if name.endswith(".gz") else ""))

with open(os.path.join(OUT, "cases"), "w") as fh:
    for c in cases:
        fh.write("\t".join(c) + "\n")
