"""An offline syntax check of a declarative Jenkinsfile (no Jenkins or Groovy exists here).

It tokenises the Groovy the way the declarative pipeline needs it — strings ('…', "…",
'''…''', \"\"\"…\"\"\"), comments (// and /* */), brackets — and checks that every bracket
closes, then walks the block tree against the declarative grammar: ``pipeline`` holds an
``agent`` and ``stages``; ``stages`` holds ``stage('name')`` blocks; each stage holds ``steps``
(or nested ``stages``/``parallel``); only known directives appear at each level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PIPELINE_DIRECTIVES = {
    "agent", "environment", "options", "parameters", "triggers", "tools", "stages", "post",
    "libraries", "input",
}  # fmt: skip
STAGE_DIRECTIVES = {
    "agent", "environment", "input", "options", "when", "tools", "steps", "stages", "parallel",
    "matrix", "post", "failFast",
}  # fmt: skip
POST_CONDITIONS = {
    "always", "changed", "fixed", "regression", "aborted", "failure", "success", "unstable",
    "unsuccessful", "cleanup",
}  # fmt: skip


@dataclass
class Block:
    name: str
    argument: str
    line: int
    children: list[Block] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


_TOKEN = re.compile(
    r"(?P<ws>\s+)|(?P<comment>//[^\n]*|/\*.*?\*/)"
    r"|(?P<string>'''.*?'''|\"\"\".*?\"\"\"|'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\")"
    r"|(?P<open>[{(\[])|(?P<close>[})\]])|(?P<word>[A-Za-z_$][\w$.]*)|(?P<other>.)",
    re.S,
)
_PAIRS = {"}": "{", ")": "(", "]": "["}


def tokens(text: str) -> list[tuple[str, str, int]]:
    out, line, pos = [], 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:  # an unterminated string or comment
            raise SyntaxError(f"line {line}: unterminated string or comment")
        kind = match.lastgroup or "other"
        value = match.group()
        if kind == "other" and value in "'\"":
            raise SyntaxError(f"line {line}: unterminated string")
        if kind not in ("ws", "comment"):
            out.append((kind, value, line))
        line += value.count("\n")
        pos = match.end()
    return out


def check_brackets(toks: list[tuple[str, str, int]]) -> None:
    stack: list[tuple[str, int]] = []
    for kind, value, line in toks:
        if kind == "open":
            stack.append((value, line))
        elif kind == "close":
            if not stack or stack[-1][0] != _PAIRS[value]:
                raise SyntaxError(f"line {line}: unexpected '{value}'")
            stack.pop()
    if stack:
        raise SyntaxError(f"line {stack[-1][1]}: '{stack[-1][0]}' is never closed")


def parse_blocks(toks: list[tuple[str, str, int]]) -> Block:
    """The tree of ``name (args)? { … }`` blocks; other tokens become statements."""
    root = Block("<file>", "", 1)
    stack = [root]
    i = 0
    depth_other = 0
    while i < len(toks):
        kind, value, line = toks[i]
        if kind == "word":
            j, argument = i + 1, ""
            if j < len(toks) and toks[j][1] == "(":
                level, k = 0, j
                while True:
                    level += toks[k][1] == "("
                    level -= toks[k][1] == ")"
                    if level == 0:
                        break
                    k += 1
                argument = " ".join(t[1] for t in toks[j + 1 : k])
                j = k + 1
            if j < len(toks) and toks[j][1] == "{" and depth_other == 0:
                block = Block(value, argument, line)
                stack[-1].children.append(block)
                stack.append(block)
                i = j + 1
                continue
            stack[-1].statements.append(value)
            i = j if j > i + 1 else i + 1
            continue
        if value in "([":
            depth_other += 1
        elif value in ")]":
            depth_other -= 1
        elif value == "{":
            stack.append(Block("<closure>", "", line))
            stack[-2].children.append(stack[-1])
        elif value == "}":
            stack.pop()
        i += 1
    return root


def check_declarative(text: str) -> list[str]:
    """Every problem of a declarative Jenkinsfile (empty when it passes)."""
    try:
        toks = tokens(text)
        check_brackets(toks)
    except SyntaxError as exc:
        return [str(exc)]
    root = parse_blocks(toks)
    problems: list[str] = []
    pipelines = [b for b in root.children if b.name == "pipeline"]
    if len(pipelines) != 1:
        return [f"expected one top-level pipeline block, found {len(pipelines)}"]
    pipeline = pipelines[0]
    names = [b.name for b in pipeline.children] + pipeline.statements[:1]
    for block in pipeline.children:
        if block.name not in PIPELINE_DIRECTIVES:
            problems.append(f"line {block.line}: '{block.name}' is not a pipeline directive")
    if "agent" not in names:
        problems.append("pipeline has no agent")
    stages = [b for b in pipeline.children if b.name == "stages"]
    if len(stages) != 1:
        problems.append("pipeline needs exactly one stages block")
    else:
        problems.extend(_check_stages(stages[0]))
    for post in (b for b in pipeline.children if b.name == "post"):
        for block in post.children:
            if block.name not in POST_CONDITIONS:
                problems.append(f"line {block.line}: '{block.name}' is not a post condition")
    return problems


def _check_stages(stages: Block) -> list[str]:
    problems = []
    if not stages.children:
        problems.append(f"line {stages.line}: stages holds no stage")
    for stage in stages.children:
        if stage.name != "stage" or not re.fullmatch(r"'[^']+'|\"[^\"]+\"", stage.argument):
            problems.append(f"line {stage.line}: expected stage('name') {{ … }}")
            continue
        kinds = {b.name for b in stage.children}
        for block in stage.children:
            if block.name not in STAGE_DIRECTIVES:
                problems.append(f"line {block.line}: '{block.name}' is not a stage directive")
        if not kinds & {"steps", "stages", "parallel", "matrix"}:
            problems.append(f"line {stage.line}: stage {stage.argument} has no steps")
        for nested in (b for b in stage.children if b.name == "stages"):
            problems.extend(_check_stages(nested))
    return problems
