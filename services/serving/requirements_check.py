"""Refuse a release image whose runtime lacks a package its bento needs, at build time, naming the package.

`release.Dockerfile` runs this on the bento's `env/python/requirements.txt` (the serving code's pins and
the model's, as MLflow logged them): the runtime image installs nothing more, so a missing or different
package would otherwise be a server that crash-loops at its first import. Standard library only (the bento
carries it; the image may have no `packaging`): lines are `name==version`, `name[extra]==version` or a bare
`name`, and versions compare by their numeric release parts (`1.9` is `1.9.0`), anything else as text.
The same parsing and comparison judge a team's `model.requirements` where it trains (pipelines/team_requirements.py).

    python requirements_check.py <requirements.txt> <model name> <model version>
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(?:==\s*([^\s;]+))?\s*(?:;.*)?$")
# How each refusal starts: pipelines/stack.py picks these lines out of the build's output.
LACKS = "the serving runtime image lacks"
HINT = ("list it under model.requirements in the pipeline config (a team's package: the release image installs "
        "it) or add it to services/serving/requirements.in (the template's runtime)")
# The bento's list of the team's own requirements, which release.Dockerfile installs before this check.
TEAM_REQUIREMENTS = "team-requirements.txt"


def _release(version: str) -> tuple[int, ...] | str:
    parts = version.strip().lower().lstrip("v").split(".")
    if not all(part.isdigit() for part in parts):
        return version.strip().lower()
    while len(parts) > 1 and parts[-1] == "0":
        parts.pop()
    return tuple(int(part) for part in parts)


def parse(line: str) -> tuple[str, str | None] | None:
    """(name, pinned version or None) of a requirement line; None for a line that is neither."""
    match = REQUIREMENT.match(line.strip())
    return (match[1], match[3]) if match else None


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def satisfies(installed: str | None, wanted: str | None) -> bool:
    return installed is not None and (not wanted or _release(installed) == _release(wanted))


def problems(requirements: str, model: str) -> list[str]:
    """One message per requirement the running interpreter does not satisfy."""
    found = []
    for number, raw in enumerate(requirements.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parsed = parse(line)
        if parsed is None:
            found.append(f"requirements.txt:{number}: {line!r} is not name==version; the bento's requirements "
                         "are pins (pipelines/bento.py)")
            continue
        name, wanted = parsed
        installed = installed_version(name)
        if not satisfies(installed, wanted):
            have = f" (the image has {name}=={installed})" if installed else ""
            found.append(f"{LACKS} {name}{'==' + wanted if wanted else ''} that model {model} needs{have}; {HINT}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    _, path, name, version = argv
    if found := problems(Path(path).read_text(), f"{name} v{version}"):
        print("\n".join(found), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
