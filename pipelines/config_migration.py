"""A template version's config-key rename, applied to the team's own configs by `copier update`.

A version that renames a pipeline-config key lists it in copier.yml's `_migrations` (CHANGELOG.md says how):

    - version: v1.1.0
      command: "{{ _copier_python }} -m pipelines.config_migration data.holdout_fraction data.eval_fraction"

It rewrites that key's line in every `models/<name>/pipeline.yaml` (comments, order and values stay as written)
and prints each file it changed. Standard library only: copier's own Python runs it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

CONFIG_GLOB = "models/*/pipeline.yaml"  # the team's configs; the template's own are renamed in its commit


def _block_end(lines: list[str], start: int) -> int:
    """The index after the mapping that opens at `lines[start]` (the next line indented no deeper)."""
    indent = len(lines[start]) - len(lines[start].lstrip())
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped and not stripped.startswith("#") and len(lines[index]) - len(lines[index].lstrip()) <= indent:
            return index
    return len(lines)


def rename_key(text: str, old: str, new: str) -> str:
    """`text` with the dotted key `old` renamed to `new`'s last part (both in the same section)."""
    *parents, old_name = old.split(".")
    start, end, depth = 0, None, 0
    lines = text.splitlines(keepends=True)
    for part in [*parents, old_name]:
        pattern = re.compile(rf"^(\s{{{depth}}}){re.escape(part)}(\s*:)")
        found = next((index for index in range(start, end or len(lines)) if pattern.match(lines[index])), None)
        if found is None:
            return text  # this config does not set the key: the new default applies
        if part != old_name:
            start, end = found + 1, _block_end(lines, found)
            child = next((line for line in lines[start:end] if line.strip() and not line.lstrip().startswith("#")), "")
            depth = len(child) - len(child.lstrip())
    lines[found] = pattern.sub(lambda match: f"{match[1]}{new.split('.')[-1]}{match[2]}", lines[found], count=1)
    return "".join(lines)


def migrate(root: Path, old: str, new: str) -> list[Path]:
    """Renames `old` to `new` in the team's configs under `root`; returns the files changed."""
    if old.split(".")[:-1] != new.split(".")[:-1]:
        raise SystemExit(f"config_migration: {old} -> {new} moves the key to another section; "
                         "write that migration as its own step")
    changed = []
    for path in sorted(root.glob(CONFIG_GLOB)):
        text = path.read_text()
        renamed = rename_key(text, old, new)
        if renamed != text:
            path.write_text(renamed)
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", help="the dotted key as the older version names it: data.holdout_fraction")
    parser.add_argument("new", help="the dotted key as the newer version names it: data.eval_fraction")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    changed = migrate(args.root, args.old, args.new)
    for path in changed:
        print(f"renamed {args.old} to {args.new} in {path}")
    print(f"config migration {args.old} -> {args.new}: {len(changed)} config(s) changed under {args.root.resolve()}")


if __name__ == "__main__":
    main()
