#!/usr/bin/env python3
"""Prints deb-src entries (deb822) derived from the system's Debian apt sources.

For every enabled `deb` entry of a Debian archive (a URI whose path holds
"debian", e.g. deb.debian.org/debian and deb.debian.org/debian-security) in
/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources, prints
the same entry with type `deb-src`, so that `apt-get source` finds Debian's
source packages for the suites the system already uses. Prints nothing when
there is no such entry. Other repositories are left out: they rarely publish
sources, and an index they lack would make `apt-get update` complain.
"""

import glob
import os
import re
import sys

APT = os.environ.get("BOP_APT_DIR", "/etc/apt")


def is_debian_archive(uri):
    return re.search(r"/debian(-security|-ports)?/?$", uri) is not None


def one_line_entries(path):
    """Entries of a one-line-style file: (options, uri, suite, components)."""
    out = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            m = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
            if m:
                opts = (m.group(1) or "").strip()[1:-1].split()
                out.append((opts, m.group(2), m.group(3), m.group(4).split()))
    return out


def deb822_stanzas(path):
    """Stanzas of a deb822 .sources file as dicts (field -> value)."""
    stanzas, cur, last = [], {}, None
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("#"):
                continue
            if not line.strip():
                if cur:
                    stanzas.append(cur)
                cur, last = {}, None
                continue
            if line[0] in " \t" and last:
                cur[last] += "\n" + line  # kept as is: an inline Signed-By key
                continue
            key, _, val = line.partition(":")
            last = key.strip().lower()
            cur[last] = val.strip()
    if cur:
        stanzas.append(cur)
    return stanzas


def main():
    seen, out = set(), []

    def emit(uri, suites, comps, signed_by):
        key = (uri, tuple(suites), tuple(comps))
        if key in seen or not is_debian_archive(uri):
            return
        seen.add(key)
        lines = ["Types: deb-src", f"URIs: {uri}", f"Suites: {' '.join(suites)}"]
        if comps:
            lines.append(f"Components: {' '.join(comps)}")
        if signed_by:
            lines.append(f"Signed-By: {signed_by}")
        out.append("\n".join(lines))

    lists = [os.path.join(APT, "sources.list")] + sorted(
        glob.glob(os.path.join(APT, "sources.list.d", "*.list"))
    )
    for path in lists:
        if not os.path.isfile(path):
            continue
        for opts, uri, suite, comps in one_line_entries(path):
            signed = [o.split("=", 1)[1] for o in opts if o.startswith("signed-by=")]
            emit(uri, [suite], comps, signed[0] if signed else None)
    for path in sorted(glob.glob(os.path.join(APT, "sources.list.d", "*.sources"))):
        for st in deb822_stanzas(path):
            if st.get("enabled", "yes").lower() == "no":
                continue
            if "deb" not in st.get("types", "").split():
                continue
            for uri in st.get("uris", "").split():
                emit(uri, st.get("suites", "").split(), st.get("components", "").split(),
                     st.get("signed-by"))
    if out:
        sys.stdout.write("\n\n".join(out) + "\n")


if __name__ == "__main__":
    main()
