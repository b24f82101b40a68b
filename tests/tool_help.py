#!/usr/bin/env python3
"""Every tool's --help against the one option table (tests/print_option_table.cpp prints it):
each option the table lists for a tool appears in that tool's --help (or one of its subcommands')
with the table's names and the table's help text, word for word, so that a shared option reads
the same in every tool; no tool offers an option the table does not list for it; a short flag
means the same long flag everywhere; and every tool answers --version with its name, version and
commit. Usage: tool_help.py BIN_DIR PRINT_OPTION_TABLE"""
import json
import re
import subprocess
import sys

bin_dir, table_exe = sys.argv[1], sys.argv[2]
rows = [json.loads(line) for line in subprocess.run([table_exe], check=True, capture_output=True, text=True).stdout.splitlines()]
failures = []
subcommands = {"maskgit-tokenize": ["encode", "decode", "reconstruct", "evaluate"]}
tools = sorted({tool for row in rows for tool in row["tools"] if tool != "maskgit-benchmark"})


def help_text(args):
    run = subprocess.run(args + ["--help"], capture_output=True, text=True)
    if run.returncode != 0:
        failures.append(f"{' '.join(args)} --help: status {run.returncode}")
    return run.stdout


def offered(text):
    """The option names --help lists: '-s,--seed' from lines like '  -s,--seed UINT ...'."""
    found = set()
    for line in text.splitlines():
        match = re.match(r"^\s{2,}(-[-\w]+(?:,-[-\w]+)*)", line)
        if match:
            found.add(match.group(1))
    return found


for tool in tools:
    exe = f"{bin_dir}/{tool}"
    texts = [help_text([exe])] + [help_text([exe, sub]) for sub in subcommands.get(tool, [])]
    joined = "\n".join(texts)
    flat = " ".join(joined.split())
    listed = [row for row in rows if tool in row["tools"]]
    for row in listed:
        if row["names"].startswith("-"):
            if row["names"] not in offered(joined):
                failures.append(f"{tool}: --help does not offer {row['names']} (the table lists it for {tool})")
        help_words = " ".join(row["help"].split())
        if help_words not in flat:
            failures.append(f"{tool}: --help does not say the table's text for {row['names']}: {help_words[:70]}...")
    allowed = {row["names"] for row in listed} | {"-h,--help"}
    for names in offered(joined) - allowed:
        failures.append(f"{tool}: --help offers {names}, which the option table does not list for {tool}")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True)
    if version.returncode != 0 or not re.match(rf"^{tool} \d+\.\d+\.\d+ \(commit ([0-9a-f]{{12}}(-dirty)?|unknown), LibTorch ", version.stdout):
        failures.append(f"{tool} --version: status {version.returncode}, printed {version.stdout!r}")

# A short flag means one long flag in every tool, and a long flag has one short form.
long_of_short, short_of_long = {}, {}
for row in rows:
    names = row["names"].split(",")
    shorts = [n for n in names if re.fullmatch(r"-\w", n)]
    longs = [n for n in names if n.startswith("--")]
    for short in shorts:
        if long_of_short.setdefault(short, longs[0]) != longs[0]:
            failures.append(f"{short} means {long_of_short[short]} in one row and {longs[0]} in {row['id']}")
    for name in longs:
        short = shorts[0] if shorts else None
        if short_of_long.setdefault(name, short) != short:
            failures.append(f"{name} has short form {short_of_long[name]} in one row and {short} in {row['id']}")

for failure in failures:
    print("FAIL:", failure)
print(f"tool_help: {len(tools)} tools, {len(rows)} options, {len(failures)} failures")
sys.exit(1 if failures else 0)
