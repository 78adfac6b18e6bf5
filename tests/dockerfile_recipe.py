"""The Dockerfile read as data: its stages and their instructions.

No Docker engine runs where the tests do, so the image is checked by reading
its recipe (dockerfile-parse does the line continuations and comments) and
by running the build stage's install steps outside Docker.
"""
from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser

# Flags of RUN itself (BuildKit), not of the command it runs.
_RUN_FLAG = re.compile(r"^--(mount|network|security)=\S+\s+")


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case: RUN, COPY, ENV, ...
    value: str
    line: int  # 1-based


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, name: str) -> list[Instruction]:
        return [i for i in self.instructions if i.name == name]

    def env(self) -> dict[str, str]:
        """ENV of this stage (KEY=VALUE form only; the project uses no other)."""
        values: dict[str, str] = {}
        for instruction in self.all("ENV"):
            for pair in shlex.split(instruction.value):
                key, sep, value = pair.partition("=")
                if not sep:
                    raise ValueError(f"line {instruction.line}: ENV without '=' is not supported: {pair!r}")
                values[key] = value
        return values


@dataclass
class Recipe:
    top: list[Instruction]  # before the first FROM: ARGs and comments
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}; stages: {[s.name for s in self.stages]}")

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path | str | None = None, text: str | None = None) -> Recipe:
    """Parse a Dockerfile from ``path`` or from ``text``."""
    if text is None:
        assert path is not None, "parse() needs a path or a text"
        text = Path(path).read_text()
    # From a file object: a DockerfileParser given content writes it to its path (./Dockerfile by default).
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()))
    top: list[Instruction] = []
    stages: list[Stage] = []
    for item in parser.structure:
        instruction = Instruction(item["instruction"].upper(), item["value"], item["startline"] + 1)
        if instruction.name == "COMMENT":
            continue
        if instruction.name == "FROM":
            words = instruction.value.split()
            named = len(words) == 3 and words[1].upper() == "AS"
            stages.append(Stage(name=words[2] if named else str(len(stages)), base=words[0]))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            top.append(instruction)
    return Recipe(top=top, stages=stages)


def run_command(instruction: Instruction) -> str:
    """The shell command of a RUN, without BuildKit's own flags (cache mounts)."""
    command = instruction.value
    while match := _RUN_FLAG.match(command):
        command = command[match.end():]
    return command


def exec_form(value: str) -> list[str] | None:
    """A JSON exec form (``["a", "b"]``) as a list; None for the shell form."""
    import json

    value = value.strip()
    if not value.startswith("["):
        return None
    parsed = json.loads(value)
    return [str(part) for part in parsed]
