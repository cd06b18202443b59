#!/usr/bin/env python3
"""Turns docs/protocol.md into a man page (roff, man macros), so the protocol ships as sensd-protocol(7)
and cannot drift from the document. Handles what that document uses: headings, paragraphs, fenced code,
tables, bullet lists, `code` and **bold**.

    md2man.py INPUT.md NAME SECTION DATE "one-line description" > OUTPUT
"""

import re
import sys


def inline(text: str) -> str:
    text = text.replace("\\", "\\e")
    text = re.sub(r"\*\*(.+?)\*\*", r"\\fB\1\\fR", text)
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    text = text.replace("-", "\\-")
    return text


def line(text: str) -> str:
    # A line starting with . or ' would be read as a request.
    return "\\&" + text if text[:1] in (".", "'") else text


def convert(md: str, name: str, section: str, date: str, description: str) -> str:
    out = [f'.TH {name.upper()} {section} "{date}" "sensd" "sensd"', ".SH NAME", f"{name} \\- {description}"]
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        text = lines[i]
        if text.lstrip().startswith("```"):
            i += 1
            out += [".PP", ".RS 4", ".nf"]
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                out.append(line(lines[i].strip().replace("\\", "\\e")))
                i += 1
            out += [".fi", ".RE"]
        elif text.startswith("# "):
            pass  # the title; NAME says it
        elif text.startswith("## "):
            out.append(".SH " + inline(text[3:]).upper())
        elif text.startswith("### ") or text.startswith("#### "):
            out.append(".SS " + inline(text.lstrip("#").strip()))
        elif text.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            i -= 1
            header, body = rows[0], rows[1:]
            for cells in body:
                out.append(".TP")
                out.append(line(inline(cells[0])))
                rest = [f"{inline(h)}: {inline(c)}" for h, c in zip(header[1:], cells[1:]) if c]
                out.append(line("; ".join(rest)) if rest else ".")
        elif re.match(r"^\s*- ", text):
            indent = len(text) - len(text.lstrip())
            item = text.strip()[2:]
            while (i + 1 < len(lines) and lines[i + 1].startswith(" " * (indent + 2))
                   and not re.match(r"^\s*- ", lines[i + 1]) and not lines[i + 1].lstrip().startswith("```")):
                i += 1
                item += " " + lines[i].strip()
            out += [".IP \\(bu 2", line(inline(item))]
        elif text.strip() == "":
            out.append(".PP")
        else:
            out.append(line(inline(text)))
        i += 1
    # Collapse runs of paragraph breaks.
    result = []
    for l in out:
        if l == ".PP" and result and result[-1] in (".PP",) :
            continue
        result.append(l)
    return "\n".join(result) + "\n"


if __name__ == "__main__":
    src, name, section, date, description = sys.argv[1:6]
    sys.stdout.write(convert(open(src, encoding="utf-8").read(), name, section, date, description))
