"""Labelled retrieval corpora for bench_knowledge: documents that ship with Python, and questions
whose answering document (and passage) is known.

The first corpus is CPython's documentation topics (`pydoc_data.topics`, the text `help("with")`
shows); its questions were the project's first relevance set.

The second corpus is the reference text `pydoc` renders for 25 standard-library modules: their
docstrings, written by CPython's authors (PSF licence), rendered at run time from the installed
Python, so nothing is vendored and a fresh machine has it. The questions were written from reading
those documents, before any search had been run on them, and were committed on their own first.
"""

from __future__ import annotations

import importlib
import pydoc
import re

STDLIB_MODULES = (
    "base64", "bisect", "colorsys", "copy", "csv", "difflib", "fnmatch", "fractions", "glob", "gzip", "hashlib",
    "heapq", "json", "pprint", "sched", "secrets", "shlex", "shutil", "statistics", "string", "tempfile",
    "textwrap", "timeit", "uuid", "zlib",
)

# CPython's documentation topics (pydoc_data.topics): (question, the topic whose document answers it).
PYDOC_TOPIC_QUESTIONS = [
    ("Which statement wraps a block with methods defined by a context manager?", "with"),
    ("How do I specify exception handlers and cleanup code for a group of statements?", "try"),
    ("How do I iterate over the elements of a list or another iterable?", "for"),
    ("How do I repeat execution as long as an expression is true?", "while"),
    ("How do I run code only when a condition holds, with elif and else branches?", "if"),
    ("How do I create a small anonymous function?", "lambda"),
    ("Which statement is a null operation, a placeholder that does nothing?", "pass"),
    ("How do I delete a name binding or remove items from a list?", "del"),
    ("How does a function give back a value to its caller?", "return"),
    ("How do I re-raise the exception that is currently being handled, or chain exceptions?", "raise"),
    ("How do I declare that a name inside a function refers to a module-level variable?", "global"),
    ("How does a nested function rebind a variable of the enclosing function?", "nonlocal"),
    ("How do I insert debugging assertions into a program?", "assert"),
    ("How do I leave the nearest enclosing loop early?", "break"),
    ("How do I skip to the next cycle of the nearest enclosing loop?", "continue"),
    ("How is a class defined, with base classes and a class body?", "class"),
    ("How is a function defined, with decorators and default parameter values?", "function"),
    ("How do I define a coroutine with async def and await?", "async"),
    ("How do I write a dictionary display of key/value pairs in curly braces?", "dict"),
    ("How do I select a range of items from a sequence with start and stop?", "slicings"),
    ("How does x += 1 combine a binary operation with an assignment?", "augassign"),
    ("How do the operators in and not in test for membership?", "in"),
    ("How do exceptions break out of the normal flow of control?", "exceptions"),
    ("Which special methods emulate numeric objects, such as __add__ and __radd__?", "numeric-types"),
    ("How do assignment statements bind names to values and modify attributes?", "assignment"),
    ("Which identifiers are reserved keywords of the language?", "identifiers"),
    ("How does the import statement find and load a module?", "import"),
    ("How do I step through a program with the interactive source code debugger?", "debugger"),
]

# (question, module whose document answers it, words of the answering passage)
STDLIB_QUESTIONS = [
    ("How do I turn a Python object into a JSON formatted string?", "json",
     "Serialize ``obj`` to a JSON formatted ``str``"),
    ("How can I read the rows of a comma separated file as dictionaries keyed by the header line?", "csv",
     "DictReader"),
    ("How do I find the n largest elements of a dataset efficiently?", "heapq",
     "Find the n largest elements in a dataset"),
    ("Where should I insert an item so that a sorted list stays sorted?", "bisect",
     "Return the index where to insert item x in list a"),
    ("How do I remove the common leading whitespace from every line of a text?", "textwrap",
     "Remove any common leading whitespace"),
    ("How can I test whether a file name matches a shell pattern like *.txt?", "fnmatch",
     "Test whether FILENAME matches PATTERN"),
    ("How do I list the paths that match a pathname pattern, including subdirectories?", "glob",
     "Return a list of paths matching a pathname pattern"),
    ("How do I open a gzip-compressed file in text mode?", "gzip",
     "Open a gzip-compressed file in binary or text mode"),
    ("How do I derive a key from a password with PBKDF2?", "hashlib",
     "Password based key derivation function 2"),
    ("How do I generate a random URL-safe token for a password reset link?", "secrets",
     "Return a random URL-safe text string"),
    ("How do I encode bytes with the URL and filesystem safe Base64 alphabet?", "base64",
     "URL- and filesystem-safe Base64 alphabet"),
    ("How do I generate a random unique identifier?", "uuid", "Generate a random UUID"),
    ("How do I compute the standard deviation of a sample?", "statistics",
     "Return the square root of the sample variance"),
    ("How do I represent a rational number such as 4/3 exactly, or build one from a string like '123/456'?",
     "fractions", "This class implements rational numbers"),
    ("How do I split a command line string the way a Unix shell would?", "shlex",
     "Split the string *s* using shell-like syntax"),
    ("How do I schedule events with priorities, using a time function and a delay function?", "sched",
     "Events are specified by tuples"),
    ("How do I measure the execution time of a small code snippet?", "timeit",
     "measuring execution"),
    ("How do I convert a colour from RGB to HSV coordinates?", "colorsys", "rgb_to_hsv"),
    ("How do I compute a CRC-32 checksum of some data?", "zlib", "Compute a CRC-32 checksum of data"),
    ("What is the difference between a shallow copy and a deep copy?", "copy",
     "The difference between shallow and deep copying"),
    ("How do I pretty-print a nested data structure while debugging?", "pprint", "Pretty-print a Python object"),
    ("How do I substitute $-placeholders in a string template?", "string",
     "A string class for supporting $-substitutions"),
    ("How do I create a temporary directory that is removed when I am done with it?", "tempfile",
     "TemporaryDirectory"),
    ("How do I copy a whole directory tree with its files?", "shutil", "Recursively copy a directory tree"),
    ("How do I find the closest matching words to a misspelt word in a list of possibilities?", "difflib",
     "get_close_matches"),
    ("How do I produce a unified diff of two lists of lines?", "difflib",
     "generate the delta as a unified diff"),
    ("How do I decompress a gzip compressed string held in memory in one go?", "gzip",
     "Decompress a gzip compressed string in one shot"),
    ("How do I find out how much space is free on a disk?", "shutil", "Return disk usage statistics"),
    ("How do I compare two secret tokens in a way that resists timing attacks?", "secrets",
     "timing analysis"),
    ("How do I compute the median, the middle value, of numeric data?", "statistics",
     "Return the median (middle value)"),
]

_SECTION = re.compile(r"^([A-Z][A-Z ]+)$")
_DROPPED = {"MODULE REFERENCE", "FILE"}  # the docs URL boilerplate and the install path: not the module's text
_ADDRESS = re.compile(r" at 0x[0-9a-f]+")  # default values rendered as "<function f at 0x7f55...>"


def stdlib_document(name: str) -> str:
    """The module's pydoc text as Markdown: each pydoc section (DESCRIPTION, FUNCTIONS, ...) a heading."""
    text = pydoc.render_doc(importlib.import_module(name), "%s", renderer=pydoc.plaintext)
    lines, dropping = [], False
    for line in text.splitlines()[1:]:  # the first line repeats the module's name
        section = _SECTION.match(line)
        if section:
            dropping = section.group(1) in _DROPPED
            if not dropping:
                lines += ["", f"## {section.group(1).title()}", ""]
            continue
        if not dropping:
            lines.append(_ADDRESS.sub("", line))
    return "\n".join(lines).strip() + "\n"
