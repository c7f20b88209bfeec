"""A checker for what Ollama accepts, written from its documentation (docs/modelfile.md, docs/template.md)
and the behaviour of its Modelfile parser, since Ollama itself cannot be installed here:

- Modelfile: one instruction per line (FROM, PARAMETER, TEMPLATE, SYSTEM, ADAPTER, LICENSE, MESSAGE,
  any case), `#` comments, an argument bare to the end of the line, in "quotes", or in \"\"\"triple
  quotes\"\"\" across lines; FROM is required; PARAMETER names and value types are Ollama's.
- TEMPLATE: Go's text/template: {{ }} actions with {{- -}} trimming, if / else if / else / end,
  range with index and element variables, := and = on variables, pipelines of eq, ne, and, or,
  not, len, slice, index, and the fields Ollama passes (.Messages with .Role and .Content, .System,
  .Prompt, .Response, .Tools).

`render_go` evaluates that subset with Go's rules (an empty value is false; `eq` compares values),
so a test can compare what Ollama would send the model with what Bitsmith's chat sends it.
The tests at the bottom show the checker rejects what Ollama rejects."""

from __future__ import annotations

import re

import pytest

INSTRUCTIONS = {"from", "parameter", "template", "system", "adapter", "license", "message"}
PARAMETERS = {"mirostat": int, "mirostat_eta": float, "mirostat_tau": float, "num_ctx": int, "repeat_last_n": int,
              "repeat_penalty": float, "temperature": float, "seed": int, "stop": str, "num_predict": int,
              "top_k": int, "top_p": float, "min_p": float}
FIELDS = {"Messages", "System", "Prompt", "Response", "Tools"}
MESSAGE_FIELDS = {"Role", "Content"}
FUNCS = {"eq", "ne", "and", "or", "not", "len", "slice", "index"}


class SyntaxProblem(ValueError):
    pass


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """[(instruction, argument)] or SyntaxProblem."""
    commands, i, n = [], 0, len(text)
    while i < n:
        line_end = text.find("\n", i)
        line_end = n if line_end < 0 else line_end
        line = text[i:line_end].strip()
        if not line or line.startswith("#"):
            i = line_end + 1
            continue
        m = re.match(r"([A-Za-z]+)[ \t]+", text[i:])
        if not m or m.group(1).lower() not in INSTRUCTIONS:
            raise SyntaxProblem(f"not an instruction: {line[:40]!r}")
        name, j = m.group(1).lower(), i + m.end()
        if name == "parameter":
            pm = re.match(r"([A-Za-z0-9_]+)[ \t]+", text[j:])
            if not pm:
                raise SyntaxProblem(f"PARAMETER without a name and value: {line!r}")
            name, j = pm.group(1), j + pm.end()
            if name not in PARAMETERS:
                raise SyntaxProblem(f"unknown parameter {name}")
        if text.startswith('"""', j):
            close = text.find('"""', j + 3)
            if close < 0:
                raise SyntaxProblem("unterminated triple-quoted argument")
            arg, i = text[j + 3:close], close + 3
            rest_end = text.find("\n", i)
            rest = text[i: n if rest_end < 0 else rest_end]
        elif text.startswith('"', j):
            close = text.find('"', j + 1)
            if close < 0 or "\n" in text[j:close]:
                raise SyntaxProblem("unterminated quoted argument")
            arg, i = text[j + 1:close], close + 1
            rest_end = text.find("\n", i)
            rest = text[i: n if rest_end < 0 else rest_end]
        else:
            arg, rest, i = text[j:line_end].strip(), "", line_end
        if rest.strip():
            raise SyntaxProblem(f"text after the argument of {name}: {rest.strip()!r}")
        i = text.find("\n", i)
        i = n if i < 0 else i + 1
        if name in PARAMETERS and PARAMETERS[name] is not str:
            try:
                PARAMETERS[name](arg)
            except ValueError:
                raise SyntaxProblem(f"parameter {name} needs a {PARAMETERS[name].__name__}, not {arg!r}") from None
        commands.append((name, arg))
    if not any(c == "from" for c, _ in commands):
        raise SyntaxProblem("no FROM line")
    return commands


# --- Go templates -----------------------------------------------------------------------------
TOKEN = re.compile(r'\s*(?:(\()|(\))|("(?:[^"\\]|\\.)*")|(-?\d+)|(\$?[A-Za-z_]*(?:\.[A-Za-z_]+)+|\$[A-Za-z_]*|[A-Za-z_]+))')


def _lex(source: str) -> list:
    """Text pieces and ("action", body) tuples, with {{- and -}} trimming applied."""
    parts, pos = [], 0
    for m in re.finditer(r"\{\{(-\s)?(.*?)(\s-)?\}\}", source, re.S):
        text = source[pos:m.start()]
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        if parts and isinstance(parts[-1], tuple) and parts[-1][2]:
            text = text.lstrip(" \t\r\n")
        parts.append(text)
        parts.append(("action", m.group(2).strip(), bool(m.group(3))))
        pos = m.end()
    tail = source[pos:]
    if parts and isinstance(parts[-1], tuple) and parts[-1][2]:
        tail = tail.lstrip(" \t\r\n")
    if "{{" in tail or "}}" in tail:
        raise SyntaxProblem("unclosed action")
    return parts + [tail]


def _tokens(expr: str) -> list[str]:
    out, pos = [], 0
    expr = expr.strip()
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise SyntaxProblem(f"cannot read {expr[pos:]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


def _parse_expr(toks: list[str], i: int = 0, stop: str | None = None):
    """A command: a function with arguments, or a single operand. Returns (node, next index)."""
    items = []
    while i < len(toks) and toks[i] != stop:
        t = toks[i]
        if t == "(":
            node, i = _parse_expr(toks, i + 1, ")")
            if i >= len(toks) or toks[i] != ")":
                raise SyntaxProblem("unbalanced parentheses")
            items.append(node)
            i += 1
        elif t == ")":
            raise SyntaxProblem("unbalanced parentheses")
        else:
            items.append(("lit", t))
            i += 1
    if not items:
        raise SyntaxProblem("empty expression")
    head = items[0]
    if head[0] == "lit" and re.fullmatch(r"[A-Za-z_]+", head[1]):
        if head[1] not in FUNCS:
            raise SyntaxProblem(f"unknown function {head[1]}")
        return ("call", head[1], items[1:]), i
    if len(items) > 1:
        raise SyntaxProblem("operands without a function")
    return head, i


def _check_operand(tok: str, variables: set[str]) -> None:
    if tok.startswith('"') or re.fullmatch(r"-?\d+", tok):
        return
    root, *fields = tok.split(".")
    if root == "":  # .Field
        if fields[0] not in FIELDS | MESSAGE_FIELDS:
            raise SyntaxProblem(f"unknown field .{fields[0]}")
    elif root == "$":
        if fields and fields[0] not in FIELDS:
            raise SyntaxProblem(f"unknown field $.{fields[0]}")
    elif root not in variables:
        raise SyntaxProblem(f"undefined variable {root}")
    elif fields and fields[0] not in MESSAGE_FIELDS:
        raise SyntaxProblem(f"unknown field {tok}")


def parse_go(source: str):
    """A tree of ("text", s) / ("out", expr) / ("if", [(cond, body)], else) / ("range", ivar, evar, expr, body)
    / ("set", var, expr, declare), or SyntaxProblem."""
    parts = _lex(source)
    stack = [("root", [])]
    variables: list[set[str]] = [{"$"}]

    def body():
        frame = stack[-1]
        return frame[1] if frame[0] in ("root", "range") else frame[1][-1][1] if frame[2] is None else frame[2]

    for p in parts:
        if isinstance(p, str):
            body().append(("text", p))
            continue
        action = p[1]
        if action.startswith("/*"):
            continue
        words = action.split(None, 1)
        key = words[0] if words else ""
        scope = set().union(*variables)
        if key == "if":
            node = _parse_expr(_tokens(words[1]))[0]
            _walk_operands(node, scope)
            stack.append(["if", [(node, [])], None])
            variables.append(set())
        elif key == "else":
            if stack[-1][0] != "if":
                raise SyntaxProblem("else outside if")
            rest = words[1] if len(words) > 1 else ""
            if rest.startswith("if "):
                node = _parse_expr(_tokens(rest[3:]))[0]
                _walk_operands(node, scope)
                stack[-1][1].append((node, []))
            elif rest:
                raise SyntaxProblem(f"bad else: {action}")
            else:
                stack[-1][2] = []
        elif key == "range":
            m = re.fullmatch(r"range\s+(\$\w*)\s*,\s*(\$\w*)\s*:=\s*(.+)", action, re.S)
            if not m:
                raise SyntaxProblem(f"range form not understood: {action}")
            node = _parse_expr(_tokens(m.group(3)))[0]
            _walk_operands(node, scope)
            stack.append(("range", [], m.group(1), m.group(2), node))
            variables.append({m.group(1), m.group(2)})
        elif key == "end":
            if len(stack) == 1:
                raise SyntaxProblem("end without a block")
            frame = stack.pop()
            variables.pop()
            if frame[0] == "if":
                body().append(("if", frame[1], frame[2]))
            else:
                body().append(("range", frame[2], frame[3], frame[4], frame[1]))
        elif re.match(r"\$\w+\s*:?=", action):
            m = re.match(r"(\$\w+)\s*(:?=)\s*(.+)", action, re.S)
            if m.group(2) == "=" and m.group(1) not in scope:
                raise SyntaxProblem(f"assignment to undeclared {m.group(1)}")
            node = _parse_expr(_tokens(m.group(3)))[0]
            _walk_operands(node, scope)
            if m.group(2) == ":=":
                variables[-1].add(m.group(1))
            body().append(("set", m.group(1), node, m.group(2) == ":="))
        else:
            node = _parse_expr(_tokens(action))[0]
            _walk_operands(node, scope)
            body().append(("out", node))
    if len(stack) != 1:
        raise SyntaxProblem("block without end")
    return stack[0][1]


def _walk_operands(node, scope) -> None:
    if node[0] == "lit":
        _check_operand(node[1], scope)
    else:
        for arg in node[2]:
            _walk_operands(arg, scope)


def _value(node, dot, env):
    if node[0] == "call":
        args = [_value(a, dot, env) for a in node[2]]
        f = node[1]
        if f == "eq":
            return any(args[0] == a for a in args[1:])
        if f == "ne":
            return args[0] != args[1]
        if f == "not":
            return not _truth(args[0])
        if f == "and":
            return next((a for a in args if not _truth(a)), args[-1])
        if f == "or":
            return next((a for a in args if _truth(a)), args[-1])
        if f == "len":
            return len(args[0])
        if f == "slice":
            return args[0][args[1]:args[2]] if len(args) > 2 else args[0][args[1]:]
        if f == "index":
            return args[0][args[1]]
    tok = node[1]
    if tok.startswith('"'):
        return bytes(tok[1:-1], "utf-8").decode("unicode_escape")
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    root, *fields = tok.split(".")
    value = dot if root == "" else env["$"] if root == "$" else env[root]
    for f in fields:
        value = value[f]
    return value


def _truth(v) -> bool:
    return bool(v)


def _run(nodes, dot, env, out) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "out":
            out.append(str(_value(node[1], dot, env)))
        elif kind == "set":
            env[node[1]] = _value(node[2], dot, env)
        elif kind == "if":
            for cond, body in node[1]:
                if _truth(_value(cond, dot, env)):
                    _run(body, dot, env, out)
                    break
            else:
                _run(node[2] or [], dot, env, out)
        elif kind == "range":
            for i, item in enumerate(_value(node[3], dot, env)):
                env[node[1]], env[node[2]] = i, item
                _run(node[4], item, env, out)


def render_go(source: str, messages: list[dict], system: str = "") -> str:
    data = {"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages], "System": system,
            "Prompt": "", "Response": "", "Tools": []}
    out: list[str] = []
    _run(parse_go(source), data, {"$": data}, out)
    return "".join(out)


# --- the checker rejects what Ollama rejects --------------------------------------------------
@pytest.mark.parametrize("text,problem", [
    ("PARAMETER temperature 0.7\n", "no FROM"),
    ("FROM m.gguf\nPARAMETER temprature 0.7\n", "unknown parameter"),
    ("FROM m.gguf\nPARAMETER num_ctx lots\n", "needs a int"),
    ('FROM m.gguf\nTEMPLATE """{{ .Prompt }}\n', "unterminated"),
    ("FROM m.gguf\nBANANA yes\n", "not an instruction"),
])
def test_the_modelfile_checker_rejects_what_ollama_rejects(text, problem):
    with pytest.raises(SyntaxProblem, match=problem):
        parse_modelfile(text)


@pytest.mark.parametrize("source,problem", [
    ("{{ if .System }}x", "without end"),
    ("{{ end }}", "end without"),
    ("{{ .Nope }}", "unknown field"),
    ("{{ $x }}", "undefined variable"),
    ("{{ frobnicate .System }}", "unknown function"),
    ("{{ $y = 1 }}", "undeclared"),
    ("{{ if eq (len .Messages 1 }}{{ end }}", "parentheses"),
])
def test_the_template_checker_rejects_broken_templates(source, problem):
    with pytest.raises(SyntaxProblem, match=problem):
        parse_go(source)


def test_the_template_evaluator_follows_go_rules():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]
    src = ('{{- $p := "" }}{{ range $i, $m := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}LAST{{ end }}'
           '[{{ $p }}>{{ .Role }}:{{ $m.Content }}]{{ $p = $m.Role }}\n{{- end }} {{ if .System }}S{{ else }}none{{ end }}')
    assert render_go(src, msgs) == "[>user:a]LAST[user>assistant:b] none"
    assert render_go("{{ .System -}}  \n x", [], system="sys") == "sysx"
