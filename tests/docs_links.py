#!/usr/bin/env python3
"""ctest docs:links: the documentation stays inside the repository and its links resolve.

Fails (exit 1, one line per problem) when
  * a tracked file cites the old out-of-tree specification file or a folder outside the
    repository (see FORBIDDEN below);
  * a relative link or image in a tracked Markdown file points to a file that does not exist,
    or its #anchor to no heading of the target (GitHub's anchor rules: the heading's text,
    lower-cased, punctuation dropped, spaces to '-', repeats suffixed -1, -2, ...);
  * a tracked file (code comments included) cites docs/NAME.md, docs/NAME.md#anchor or
    docs/NAME.md §N that does not exist, or README "Heading" naming no heading of README.md.

Usage: docs_links.py [REPO_ROOT]   (default: the folder above this script)
Needs only Python 3's standard library. Files: the tracked ones (`git ls-files`) when REPO_ROOT
is a git checkout, otherwise every file outside build*/ and .git/.
"""
import os
import re
import subprocess
import sys
import unicodedata

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), ".."))

# Patterns built in pieces, so that this file does not match itself.
_SPEC = "SP" + "EC"
FORBIDDEN = [
    (re.compile(r"\b" + _SPEC + r"(\.md\b|\s*§|\s+section\b|\s+\d|'s\b)"),
     "cites the out-of-tree specification; cite docs/*.md instead"),
    (re.compile(r"\.\./" + "shared/"), "points to a folder outside the repository"),
]

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); the target may carry a "title".
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
DOCS_CITATION = re.compile(r"(?<![\w/.-])docs/([A-Za-z0-9_.-]+\.md)(#[A-Za-z0-9_\-]+)?(?:\s*§\s*(\d+(?:\.\d+)*))?")
README_CITATION = re.compile(r"\bREADME(?:\.md)?\s+\"([^\"]+)\"")


def tracked_files():
    if os.path.isdir(os.path.join(ROOT, ".git")) or os.path.isfile(os.path.join(ROOT, ".git")):
        try:
            out = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], check=True, capture_output=True).stdout
            return sorted(p for p in out.decode("utf-8").split("\0") if p)
        except (OSError, subprocess.CalledProcessError):
            pass
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d != ".git" and not d.startswith("build")]
        files += [os.path.relpath(os.path.join(folder, n), ROOT) for n in names]
    return sorted(files)


def read_text(path):
    try:
        with open(os.path.join(ROOT, path), "rb") as f:
            data = f.read()
    except OSError:
        return None  # tracked but deleted in the working tree
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def slug(text):
    """GitHub's heading anchor: rendered text, lower-cased, punctuation dropped, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)                    # inline HTML tags
    text = text.replace("`", "").replace("*", "")
    text = text.strip().lower()
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in " -_" or cat[0] in "LNM":
            kept.append(ch)
    return "".join(kept).replace(" ", "-")


def outside_fences(text):
    """(line number, line) of the lines not inside fenced code blocks."""
    inside = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            yield number, line


_headings_cache = {}


def headings(path):
    """(anchors, heading texts, section numbers) of a Markdown file, or None if unreadable."""
    if path not in _headings_cache:
        text = read_text(path)
        if text is None:
            _headings_cache[path] = None
        else:
            anchors, texts, numbers, seen = set(), set(), set(), {}
            for _, line in outside_fences(text):
                m = HEADING.match(line)
                if not m:
                    continue
                title = m.group(2)
                texts.add(title.replace("`", "").lower())
                base = slug(title)
                count = seen.get(base, 0)
                seen[base] = count + 1
                anchors.add(base if count == 0 else "%s-%d" % (base, count))
                for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line):
                    anchors.add(a)
                n = re.match(r"(\d+(?:\.\d+)*)\.?\s", title)
                if n:
                    numbers.add(n.group(1))
            for a in re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text):
                anchors.add(a)
            _headings_cache[path] = (anchors, texts, numbers)
    return _headings_cache[path]


def check_target(source, target_path, anchor, problems, where):
    """target_path: repository-relative path (normalised); anchor without '#', or None."""
    full = os.path.join(ROOT, target_path)
    if not os.path.exists(full):
        problems.append("%s: %s does not exist" % (where, target_path))
        return
    if anchor is None or anchor == "":
        return
    if not target_path.endswith(".md"):
        problems.append("%s: #%s on %s, which is not Markdown" % (where, anchor, target_path))
        return
    info = headings(target_path)
    if info is None or anchor not in info[0]:
        problems.append("%s: %s has no heading with the anchor #%s" % (where, target_path, anchor))


def main():
    files = tracked_files()
    problems = []
    markdown_links = 0
    citations = 0
    for path in files:
        text = read_text(path)
        if text is None:
            continue
        if os.path.abspath(os.path.join(ROOT, path)) == os.path.abspath(__file__):
            continue  # its own docstring shows the forms it checks
        for number, line in enumerate(text.splitlines(), 1):
            where = "%s:%d" % (path, number)
            for pattern, why in FORBIDDEN:
                if pattern.search(line):
                    problems.append("%s: %s: %s" % (where, why, line.strip()))
            for m in DOCS_CITATION.finditer(line):
                citations += 1
                target = "docs/" + m.group(1)
                check_target(path, target, m.group(2)[1:] if m.group(2) else None, problems, where)
                if m.group(3) and os.path.exists(os.path.join(ROOT, target)):
                    info = headings(target)
                    if info is None or m.group(3) not in info[2]:
                        problems.append("%s: %s has no section %s" % (where, target, m.group(3)))
            for m in README_CITATION.finditer(line):
                citations += 1
                info = headings("README.md")
                if info is None or m.group(1).replace("`", "").lower() not in info[1]:
                    problems.append("%s: README.md has no heading \"%s\"" % (where, m.group(1)))
        if not path.endswith(".md"):
            continue
        for number, line in outside_fences(text):
            where = "%s:%d" % (path, number)
            for m in LINK.finditer(INLINE_CODE.sub("", line)):
                target = m.group(1)
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # http:, https:, mailto:
                    continue
                markdown_links += 1
                file_part, _, anchor = target.partition("#")
                if file_part == "":
                    resolved = path
                elif file_part.startswith("/"):
                    resolved = os.path.normpath(file_part.lstrip("/"))
                else:
                    resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if resolved.startswith(".."):
                    problems.append("%s: %s leaves the repository" % (where, target))
                    continue
                check_target(path, resolved, anchor or None, problems, where)
    for p in problems:
        print("docs:links: " + p)
    print("docs:links: %d tracked files, %d relative Markdown links, %d citations of docs/ or README headings, "
          "%d problems" % (len(files), markdown_links, citations, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
