#!/usr/bin/env python3
"""Builds a retrieval corpus with known answers from the man pages on this machine.

Each selected page of /usr/share/man/man1 and man8 is rendered as plain text by groff as
man-db runs it for `MANWIDTH=80 man --nh --nj` (78 columns, no hyphenation, justification
or overstriking; 2.5 times faster than `man | col -bx`). The description of its
NAME section ("ls - list directory contents") becomes a query ("list directory
contents") whose one right answer is that page, and the description is removed from the
page written to the corpus (the NAME section keeps only the names), so the query is not
found verbatim as the page's own summary. Queries and answers are written by the pages'
authors, not by this project.

Which pages, deterministically:
  1. every regular gzipped file of man1 and man8 (symbolic links are aliases of other
     pages), grouped by family (the name up to its first `-`, `_` or `.`), at most
     PER_FAMILY pages of a family spread evenly over its sorted names: one package ships
     thousands of generated sub-command pages;
  2. of those, the eligible ones: not a `.so` redirect; renders to at least MIN_BYTES; a
     NAME section with exactly one "names - description" separator; a description of at
     least MIN_WORDS words that is not help2man's "manual page for ..." placeholder and
     that no other candidate shares (case and whitespace aside; such queries would have
     several right answers);
  3. COUNT of the eligible pages, spread evenly over them in name order.
A page longer than --max-bytes is cut at the last line break before it, to bound the
benchmark's embedding time (the NAME section and the first sections are kept).

Output: DIR/docs/<page>.txt (e.g. ls.1.txt), DIR/queries.jsonl with one
{"query": ..., "answer": "<page>.txt"} per line in answer order, DIR/manifest.json (count,
limits, this script's sha256), and a one-line summary on stderr. DIR is replaced as a
whole (built beside it, then renamed). Uses only the standard library, plus groff.

Usage: retrieval_corpus.py DIR [--count N] [--max-bytes B] [--samples K]
"""
import argparse
import concurrent.futures
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

MAN_DIRS = ["/usr/share/man/man1", "/usr/share/man/man8"]
PER_FAMILY = 3
MIN_BYTES = 300
MIN_WORDS = 3
# "names - description": man pages use `\-` (rendered "-", U+2212 or U+2010), mdoc an em dash.
SEPARATOR = re.compile(r"\s+(?:-|--|\u2014|\u2013|\u2212|\u2010)\s+")


def page_name(path):
    """`/usr/share/man/man1/ls.1.gz` -> `ls.1`."""
    name = os.path.basename(path)
    return name[:-3] if name.endswith(".gz") else name


def family(name):
    return re.split(r"[-_.]", name, maxsplit=1)[0]


def spread(items, cap):
    """At most `cap` of `items`, spread evenly over them, in order."""
    if len(items) <= cap:
        return list(items)
    return [items[i * len(items) // cap] for i in range(cap)]


def candidates():
    by_family = {}
    for directory in MAN_DIRS:
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            if name.endswith(".gz") and not os.path.islink(path) and os.path.isfile(path):
                by_family.setdefault(family(name), []).append(path)
    chosen = []
    for name in sorted(by_family):
        chosen.extend(spread(sorted(by_family[name], key=page_name), PER_FAMILY))
    return sorted(chosen, key=page_name)


def source_text(path):
    """The page's roff source as UTF-8 (pages that are not valid UTF-8 are Latin-1)."""
    with gzip.open(path, "rb") as source:
        data = source.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def is_redirect(source):
    """A page whose first request is `.so other-page`."""
    for line in source.split("\n"):
        stripped = line.strip()
        if not stripped or stripped == "." or stripped.startswith(('.\\"', "'\\\"", '\\"', ".\\#")):
            continue
        return stripped.startswith((".so ", ".so\t"))
    return True


# The preprocessors a page asks for on its first line (`'\" t`), as groff options.
PREPROCESSORS = {"e": "-e", "g": "-g", "p": "-p", "r": "-R", "t": "-t"}
PREPROCESSOR_LINE = re.compile(r"^['.]\\\" ([egprtv]+)\s*$")


def render(source):
    """The page as plain text, 78 columns as `MANWIDTH=80 man --nh --nj` sets them, without
    hyphenation, justification or overstriking, runs of blank lines squeezed to one."""
    options = {"-t"}
    wanted = PREPROCESSOR_LINE.match(source.split("\n", 1)[0])
    if wanted:
        options.update(PREPROCESSORS[c] for c in wanted.group(1) if c in PREPROCESSORS)
    command = ["groff", "-Kutf-8", *sorted(options), "-mandoc", "-Tutf8", "-P-cbou"]
    command += ["-rLL=78n", "-rLT=78n", "-rHY=0", "-dAD=l"]
    env = dict(os.environ, LC_ALL="C.UTF-8")
    try:
        formatted = subprocess.run(
            command, input=source.encode("utf-8"), env=env, capture_output=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    if formatted.returncode != 0 or not formatted.stdout:
        return None
    text = formatted.stdout.decode("utf-8", errors="replace")
    text = "".join(c for c in text if c in "\n\t" or c >= " ")
    lines = [line.rstrip() for line in text.split("\n")]
    squeezed = []
    for line in lines:
        if line or (squeezed and squeezed[-1]):
            squeezed.append(line)
    return "\n".join(squeezed).strip("\n") + "\n"


def split_name_section(text):
    """(names, description, text without the description), or None when the page has no
    NAME section of the form "names - description". Only the section's first paragraph
    is read and replaced: a few pages put more there (choom(1) its synopsis)."""
    lines = text.split("\n")
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "NAME")
    except StopIteration:
        return None
    first = start + 1
    while first < len(lines) and not lines[first].strip():
        first += 1
    end = first
    while end < len(lines) and lines[end].strip() and lines[end][:1].isspace():
        end += 1
    body = lines[first:end]
    if not body:
        return None
    parts = SEPARATOR.split(" ".join(line.strip() for line in body))
    if len(parts) != 2:
        return None
    names, description = parts[0].strip(), " ".join(parts[1].split())
    indent = body[0][: len(body[0]) - len(body[0].lstrip())]
    kept = lines[:first] + [indent + names] + lines[end:]
    return names, description, "\n".join(kept)


def examine(path):
    """The page's record, or the reason it is not eligible."""
    try:
        source = source_text(path)
    except (OSError, EOFError):
        return "unreadable"
    if is_redirect(source):
        return "redirect"
    text = render(source)
    if text is None:
        return "render failed"
    if len(text.encode("utf-8")) < MIN_BYTES:
        return "too short"
    split = split_name_section(text)
    if split is None:
        return "no NAME description"
    names, description, document = split
    if len(description.split()) < MIN_WORDS:
        return "description under 3 words"
    if description.lower().startswith("manual page for"):
        return "help2man placeholder"
    return {"page": page_name(path), "names": names, "query": description, "document": document}


def normalized(description):
    return " ".join(description.lower().split()).rstrip(".")


def truncate(document, max_bytes):
    data = document.encode("utf-8")
    if len(data) <= max_bytes:
        return document, False
    cut = data.rfind(b"\n", 0, max_bytes)
    cut = cut if cut > 0 else max_bytes
    return data[:cut].decode("utf-8", errors="ignore") + "\n", True


def own_sha256():
    with open(os.path.abspath(__file__), "rb") as script:
        return hashlib.sha256(script.read()).hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", help="output directory (replaced)")
    parser.add_argument("--count", type=int, default=300, help="documents (and queries) to select")
    parser.add_argument("--max-bytes", type=int, default=16_000, help="cut longer pages at a line break")
    parser.add_argument("--samples", type=int, default=0, help="print this many sample queries to stdout")
    args = parser.parse_args()
    for tool in ("groff",):
        if shutil.which(tool) is None:
            sys.exit(f"retrieval_corpus: `{tool}` is not installed")
    started = time.monotonic()

    pool = candidates()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as workers:
        results = list(workers.map(examine, pool))
    reasons = {}
    records = []
    for result in results:
        if isinstance(result, str):
            reasons[result] = reasons.get(result, 0) + 1
        else:
            records.append(result)
    shared = {}
    for record in records:
        key = normalized(record["query"])
        shared[key] = shared.get(key, 0) + 1
    eligible = [r for r in records if shared[normalized(r["query"])] == 1]
    reasons["description shared"] = len(records) - len(eligible)
    if len(eligible) < args.count:
        sys.exit(f"retrieval_corpus: only {len(eligible)} eligible pages, asked for {args.count}")
    chosen = spread(eligible, args.count)

    final = os.path.abspath(args.dir)
    building = final + ".building"
    shutil.rmtree(building, ignore_errors=True)
    os.makedirs(os.path.join(building, "docs"))
    total_bytes = 0
    cut = 0
    with open(os.path.join(building, "queries.jsonl"), "w", encoding="utf-8") as queries:
        for record in chosen:
            answer = record["page"] + ".txt"
            document, was_cut = truncate(record["document"], args.max_bytes)
            cut += was_cut
            with open(os.path.join(building, "docs", answer), "w", encoding="utf-8") as out:
                out.write(document)
            total_bytes += len(document.encode("utf-8"))
            queries.write(json.dumps({"query": record["query"], "answer": answer}, ensure_ascii=False) + "\n")
    manifest = {
        "count": len(chosen),
        "max_bytes": args.max_bytes,
        "per_family": PER_FAMILY,
        "candidates": len(pool),
        "eligible": len(eligible),
        "skipped": reasons,
        "bytes": total_bytes,
        "cut_to_max_bytes": cut,
        "script_sha256": own_sha256(),
    }
    with open(os.path.join(building, "manifest.json"), "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=1, sort_keys=True)
        out.write("\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(building, final)

    for record in spread(chosen, args.samples) if args.samples else []:
        print(f"{record['query']!r:70} -> {record['page']}.txt")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(reasons.items()) if n)
    print(
        f"retrieval_corpus: {len(chosen)} pages ({total_bytes} bytes, {cut} cut to {args.max_bytes}) "
        f"of {len(eligible)} eligible among {len(pool)} candidates (skipped: {skipped}) "
        f"into {final} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
