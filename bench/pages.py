#!/usr/bin/env python3
"""Make the benchmark's two pages from the Python documentation shipped by Debian.

The benchmark needs real HTML (real tag soup, real text, real link density), and this machine
reaches no web site, only package registries. Debian's python3.X-doc package ships the whole
docs.python.org site as static HTML, so the pages come from there:

  small.html  one ordinary reference page (library/glob.html, about 30 KB)
  large.html  about 2 MB: no single content page of that site is that big (the only bigger pages
              are the index and the table of contents, which are nothing but links), so this is
              the <head> of library/os.html followed by the <body> contents of three big
              reference pages of the same directory, in order; see LARGE below.

Ferry exists for sites that link to themselves with absolute URLs, so the pages are made to look
like an origin site at https://www.example.com/3/ (the site's docs.python.org/3/ layout):
  - every relative href/src/action is resolved against the page's own URL
    (fragment-only links such as "#glob.glob" stay as they are, as on a real site);
  - links to docs.python.org and the file:///usr/share/doc/... canonical links point there too.
Links to other sites (python.org, github.com, ...) stay as they are.

Usage: pages.py SRC_HTML_ROOT OUT_DIR   (writes OUT_DIR/small.html, OUT_DIR/large.html and
OUT_DIR/pages.tsv: name, bytes, origin-domain occurrences, links made absolute, source)
"""

import re
import sys
from pathlib import Path
from urllib.parse import urljoin

SITE = "https://www.example.com/3/"
SMALL = "library/glob.html"
LARGE = [
    "library/os.html",
    "library/stdtypes.html",
    "library/datetime.html",
]

# Double and single quoted attribute values; Sphinx writes double quotes.
ATTR = re.compile(r"""\b(href|src|action)=(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
# Already absolute (a scheme) or protocol-relative: not a link into the page's own site.
ABSOLUTE = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")
# The same site under the names it really has: rewrite to the origin's name.
SAME_SITE = re.compile(r"(?:https?://docs\.python\.org/3/|file:///usr/share/doc/python3[.0-9]*/html/)")


def absolutize(html: str, rel_path: str) -> tuple[str, int]:
    """Resolve the page's relative links against its URL on the origin; return (html, count)."""
    page_url = SITE + rel_path
    count = 0

    def fix(m: re.Match) -> str:
        nonlocal count
        name, quote, value = m.group(1), m.group(2), m.group(3)
        if SAME_SITE.match(value):
            value = SAME_SITE.sub(SITE, value, count=1)
        elif value == "" or value.startswith("#") or ABSOLUTE.match(value):
            return m.group(0)
        else:
            value = urljoin(page_url, value)
        count += 1
        return f"{name}={quote}{value}{quote}"

    return ATTR.sub(fix, html), count


def body_of(html: str) -> str:
    start = re.search(r"<body[^>]*>", html, re.IGNORECASE)
    end = html.lower().rfind("</body>")
    if not start or end < 0:
        sys.exit("pages.py: no <body> found")
    return html[start.end():end]


def read(root: Path, rel: str) -> str:
    path = root / rel
    if not path.is_file():
        sys.exit(f"pages.py: {path} is missing (a different python3-doc version?)")
    # The files are UTF-8; surrogateescape keeps any stray byte as it is.
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def origin_occurrences(html: str) -> int:
    """What nginx's sub_filter 'example.com' replaces: case-insensitive, no boundaries."""
    return len(re.findall("example.com", html, re.IGNORECASE))


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    root, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    rows = []

    small, n = absolutize(read(root, SMALL), SMALL)
    rows.append(("small.html", small, n, SMALL))

    # Splice first, then resolve once: the parts share one directory, so their relative links
    # mean the same from the first part's URL, and the count covers only what is kept.
    assert len({rel.rsplit("/", 1)[0] for rel in LARGE}) == 1, "LARGE must share one directory"
    parts = [read(root, rel) for rel in LARGE]
    head = parts[0][: re.search(r"<body[^>]*>", parts[0], re.IGNORECASE).end()]
    large = head + "".join(body_of(p) for p in parts) + "\n</body>\n</html>\n"
    large, n = absolutize(large, LARGE[0])
    rows.append(("large.html", large, n, "<head> of " + LARGE[0] + ", <body> of " + " + ".join(LARGE)))

    with open(out / "pages.tsv", "w") as tsv:
        for name, html, links, source in rows:
            data = html.encode("utf-8", errors="surrogateescape")
            (out / name).write_bytes(data)
            tsv.write(f"{name}\t{len(data)}\t{origin_occurrences(html)}\t{links}\t{source}\n")


if __name__ == "__main__":
    main()
