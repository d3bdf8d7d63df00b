"""Offline link check of the rendered book (docs/book) and of README.md.

    check_links.py BOOK_HTML_DIR REPO_ROOT [--site DIR]

Every <a href> and <img src> of every rendered page that is not an absolute URL must resolve:
inside the book, to a file the build wrote, and a #fragment to an id on that page; outside the
book (a link such as ../../pipeline-examples/credfile.yaml from docs/book/), to a file or
directory of the repository (tracked, or new and not ignored by git), as if the book sat at
--site (default: where BOOK_HTML_DIR is inside REPO_ROOT, else docs/book). README.md's relative
links must name repository files too. Standard library only; exits 1 listing every broken link.
"""

import argparse
import html.parser
import os
import posixpath
import re
import subprocess
import sys
import urllib.parse

# Pages mdbook generates with site-absolute links (<base href="/">) or none of ours.
SKIP_PAGES = {"404.html", "toc.html"}
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:|^//")


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []  # (attribute value, line)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag == "a" and a.get("href") is not None:
            self.links.append((a["href"], self.getpos()[0]))
        if tag == "img" and a.get("src") is not None:
            self.links.append((a["src"], self.getpos()[0]))


def tracked_files(repo):
    """Files git tracks or would track (not ignored), with their parent directories: a build
    product or a stray ignored file does not count."""
    try:
        out = subprocess.run(
            ["git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = set()
    for f in filter(None, out.split("\0")):
        paths.add(f)
        d = posixpath.dirname(f)
        while d:
            paths.add(d)
            d = posixpath.dirname(d)
    paths.add("")
    return paths


def in_repo(rel, repo, tracked):
    """rel: a normalised path relative to the repository root."""
    if rel.startswith("../") or rel == "..":
        return False
    rel = "" if rel == "." else rel.rstrip("/")
    if tracked is not None and rel not in tracked:
        return False
    return os.path.exists(os.path.join(repo, rel))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("book")
    ap.add_argument("repo")
    ap.add_argument("--site")
    args = ap.parse_args()
    book = os.path.realpath(args.book)
    repo = os.path.realpath(args.repo)
    site = args.site
    if site is None:
        rel = os.path.relpath(book, repo)
        site = "docs/book" if rel.startswith("..") else rel
    tracked = tracked_files(repo)

    pages = {}
    for d, _, files in os.walk(book):
        for f in files:
            if f.endswith(".html"):
                rel = os.path.relpath(os.path.join(d, f), book).replace(os.sep, "/")
                p = Page()
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    p.feed(fh.read())
                pages[rel] = p
    if "index.html" not in pages:
        sys.exit(f"{book}: no index.html; build the book first (mdbook build docs)")

    broken = []
    checked = 0
    for page, p in sorted(pages.items()):
        if page in SKIP_PAGES:
            continue
        here = posixpath.dirname(page)
        for link, line in p.links:
            if SCHEME.match(link):
                continue
            checked += 1
            path, _, frag = link.partition("#")
            path = urllib.parse.unquote(path.split("?", 1)[0])
            frag = urllib.parse.unquote(frag)
            where = f"{page}:{line}: {link}"
            if not path:
                if frag and frag not in p.ids:
                    broken.append(f"{where}: no id `{frag}` on this page")
                continue
            if path.startswith("/"):
                broken.append(f"{where}: site-absolute path (write it relative to the page)")
                continue
            target = posixpath.normpath(posixpath.join(here, path))
            if target == ".." or target.startswith("../"):
                # Outside the book: a repository file, seen from where the book sits.
                rel = posixpath.normpath(posixpath.join(site, here, path))
                if not in_repo(rel, repo, tracked):
                    hint = (" (mdbook rewrites a link to a .md file into .html: include the file"
                            " as a chapter or link its directory)" if rel.endswith(".html") else "")
                    broken.append(f"{where}: repository path `{rel}` is not a file or directory"
                                  f" of the repository{hint}")
                elif frag:
                    broken.append(f"{where}: a #fragment on a repository file cannot be checked; drop it")
                continue
            if target in pages or (target + "/index.html").lstrip("./") in pages:
                dest = pages.get(target) or pages.get((target + "/index.html").lstrip("./"))
                if frag and frag not in dest.ids:
                    broken.append(f"{where}: no id `{frag}` in {target}")
                continue
            if os.path.exists(os.path.join(book, target)):
                if frag:
                    broken.append(f"{where}: #fragment on a non-HTML file")
                continue
            broken.append(f"{where}: `{target}` is not in the book"
                          + (" (a link to a .md file outside the book? mdbook rewrites it to .html)"
                             if target.endswith(".html") else ""))

    # README.md: relative links to repository files (it is read on GitHub and in the packages).
    readme = os.path.join(repo, "README.md")
    text = open(readme, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        link = m.group(1)
        if SCHEME.match(link) or link.startswith("#"):
            if link.startswith("#"):
                broken.append(f"README.md: {link}: an anchor into README.md itself; link the book")
            continue
        checked += 1
        path, _, frag = link.partition("#")
        rel = posixpath.normpath(urllib.parse.unquote(path))
        if not in_repo(rel, repo, tracked):
            broken.append(f"README.md: {link}: `{rel}` is not a file or directory of the repository")

    for b in broken:
        print(f"broken link: {b}", file=sys.stderr)
    if broken:
        sys.exit(f"check_links: {len(broken)} broken of {checked} links")
    print(f"check_links: {checked} links in {len(pages)} pages and README.md resolve")


if __name__ == "__main__":
    main()
