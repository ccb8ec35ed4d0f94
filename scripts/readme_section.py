"""Replaces a generated section of README.md (the text between `<!-- NAME:start -->`
and `<!-- NAME:end -->`), for the scripts that write tables from measurements
(accuracy-table.py, softmax-table.py, bench-table.sh). Standard library only."""

import os
import sys


def replace_section(readme_path, name, text, table_path=None):
    """Puts `text` between the NAME markers of `readme_path` (exits if they are
    missing) and, when `table_path` is given, writes it there too."""
    if table_path:
        os.makedirs(os.path.dirname(table_path) or ".", exist_ok=True)
        with open(table_path, "w") as f:
            f.write(text)
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    with open(readme_path) as f:
        readme = f.read()
    i, j = readme.find(start), readme.find(end)
    if i < 0 or j < i:
        sys.exit(f"{readme_path} lacks the {start} ... {end} markers")
    readme = readme[: i + len(start)] + "\n" + text.rstrip("\n") + "\n" + readme[j:]
    with open(readme_path, "w") as f:
        f.write(readme)
