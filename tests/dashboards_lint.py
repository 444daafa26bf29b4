#!/usr/bin/env python3
"""Lint the Grafana dashboards of mailroute_exporter and list their PromQL.

Usage:
  dashboards_lint.py [FILE...]                      lint the dashboards among FILE
  dashboards_lint.py --print-exprs [FILE...]        lint, then print every PromQL expression
  dashboards_lint.py --print-exprs --substitute ... the same, with Grafana variables replaced

FILE ending in .json is a dashboard, FILE ending in .yml/.yaml a Prometheus rules file (only
read for --print-exprs). Without FILE: dashboards/*.json and alerts/*.rules.yml of the
repository this script lives in.

Conventions enforced on dashboards (exit status 1 and one line per problem, naming the panel):
  - no `__inputs`; schemaVersion >= 39; a `datasource` variable of type datasource with query
    `prometheus`; query variables job, instance, domain and host on ${datasource};
  - dashboard uids unique across the files, panel ids unique within a dashboard;
  - every panel other than a row has a non-empty title, description and
    fieldConfig.defaults.unit, datasource {"type": "prometheus", "uid": "${datasource}"}, and
    at least one target; every target has that datasource and a non-empty expr;
  - every selector in every expr has the matchers job=~"$job" and instance=~"$instance";
    dashboard variables are only used with =~ or !~ (they may hold several values);
  - every counter (a metric whose name ends in _total) appears only as the range-vector
    argument of rate(), irate() or increase();
  - every rate()/irate()/increase() range is [$__rate_interval], with one exception: a stat
    panel whose title says "last <window>" may use exactly that fixed window, e.g.
    "Misroutes, last 24h" with [24h];
  - every $variable used in an expr is defined (or one of Grafana's $__ variables).

--print-exprs writes one JSON object per line: {"source": "...", "expr": "..."}. Sources are
"<file>: panel <id> '<title>' target <refId>", "<file>: variable <name>" (the series selector
of a label_values() query) and "<file>: alert <name>" / "<file>: record <name>".
--substitute replaces $__rate_interval and $__interval by 1m, $__range by 1h, and every other
variable by .* so that the result can be sent to a real Prometheus as it is.

The rules files are read with a small reader for the YAML this project writes (block or
one-line scalars after `expr:`); PyYAML is not needed. It fails loudly on anything else.

Plain Python 3 standard library only.
"""

import argparse
import glob
import json
import os
import re
import sys

PROM_DS = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_QUERY_VARS = ("job", "instance", "domain", "host")
RATE_FUNCS = {"rate", "irate", "increase"}
AGGREGATORS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
               "count_values", "bottomk", "topk", "quantile"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
BINARY_WORDS = {"and", "or", "unless", "atan2", "bool"}
BUILTIN_VARS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h",
                "__interval_ms": "60000", "__range_s": "3600", "__range_ms": "3600000"}

TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{[^}]*\}|\$\w+|\[\[\w+(?::\w+)?\]\])
  | (?P<num>0[xX][0-9a-fA-F]+
        |(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]@:])
""", re.X)

VAR_NAME_RE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


class PromQLError(Exception):
    pass


def lex(expr):
    toks = []
    pos = 0
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m:
            raise PromQLError(f"cannot read {expr[pos:pos + 20]!r} at offset {pos}")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            toks.append((kind, m.group()))
        pos = m.end()
    return toks


def unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def find_close(toks, i, open_, close):
    """Index of the token closing the bracket opened at toks[i]."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j][1] == open_:
            depth += 1
        elif toks[j][1] == close:
            depth -= 1
            if depth == 0:
                return j
    raise PromQLError(f"unbalanced {open_!r}")


def selectors(expr):
    """Every series selector in expr: dicts with name, matchers [(label, op, value)], range
    (text inside [] or None) and func (the function whose direct argument it is, or None)."""
    toks = lex(expr)
    out = []
    stack = []          # one entry per open '(': function name or None
    pending_agg = None  # `sum by (x) (` : the aggregator waiting for its '('
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "ident":
            low = text.lower()
            if low in GROUPING:
                i = find_close(toks, i + 1, "(", ")") + 1 if nxt == "(" else i + 1
                continue
            if low in BINARY_WORDS or low == "offset" or low in ("inf", "nan"):
                i += 1
                continue
            if nxt == "(":
                stack.append(text)
                i += 2
                continue
            if low in AGGREGATORS and nxt is not None and nxt.lower() in ("by", "without"):
                pending_agg = text
                i += 1
                continue
            sel = {"name": text, "matchers": [], "range": None}
            i += 1
        elif text == "{":
            sel = {"name": None, "matchers": [], "range": None}
        elif text == "(":
            stack.append(pending_agg)
            pending_agg = None
            i += 1
            continue
        elif text == ")":
            if not stack:
                raise PromQLError("unbalanced ')'")
            stack.pop()
            i += 1
            continue
        elif text == "[":  # subquery range after ')'
            i = find_close(toks, i, "[", "]") + 1
            continue
        else:
            i += 1
            continue
        # a selector starts at toks[i] (after its name, if any)
        if i < len(toks) and toks[i][1] == "{":
            j = find_close(toks, i, "{", "}")
            body = toks[i + 1:j]
            k = 0
            while k < len(body):
                if body[k][1] == ",":
                    k += 1
                    continue
                if k + 2 >= len(body) or body[k + 2][0] != "str":
                    raise PromQLError(f"bad label matcher near {' '.join(t for _, t in body[k:k + 3])!r}")
                label, op, value = body[k][1], body[k + 1][1], body[k + 2][1]
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"bad matcher operator {op!r}")
                sel["matchers"].append((label, op, unquote(value)))
                k += 3
            i = j + 1
        if sel["name"] is None:
            names = [v for lab, op, v in sel["matchers"] if lab == "__name__"]
            sel["name"] = names[0] if names else ""
        if i < len(toks) and toks[i][1] == "[":
            j = find_close(toks, i, "[", "]")
            sel["range"] = "".join(t for _, t in toks[i + 1:j])
            i = j + 1
        sel["func"] = stack[-1] if stack else None
        out.append(sel)
    if stack:
        raise PromQLError("unbalanced '('")
    return out


def variables_in(text):
    return {a or b or c for a, b, c in VAR_NAME_RE.findall(text)}


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return BUILTIN_VARS.get(name, ".*")
    return VAR_NAME_RE.sub(repl, expr)


# --------------------------------------------------------------------------- dashboards

def walk_panels(panels):
    for p in panels or []:
        yield p
        if p.get("type") == "row":
            yield from walk_panels(p.get("panels"))


def label_values_selector(query):
    """The series selector of a Grafana label_values(selector, label) query, or None."""
    if isinstance(query, dict):
        query = query.get("query", "")
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query or "", re.S)
    return m.group(1).strip() if m else None


def lint_expr(expr, where, panel, defined_vars, problems):
    try:
        sels = selectors(expr)
    except PromQLError as e:
        problems.append(f"{where}: cannot parse expr: {e}")
        return
    for var in variables_in(expr):
        if var not in defined_vars and var not in BUILTIN_VARS:
            problems.append(f"{where}: uses undefined variable ${var}")
    fixed_ok = None
    if panel is not None and panel.get("type") == "stat":
        m = re.search(r"\blast (\d+[smhdwy])\b", panel.get("title", ""))
        fixed_ok = m.group(1) if m else None
    for s in sels:
        name = s["name"] or "{...}"
        ms = {(lab, op, val) for lab, op, val in s["matchers"]}
        for lab in ("job", "instance"):
            if not ({(lab, "=~", f"${lab}"), (lab, "=~", "${%s}" % lab)} & ms):
                problems.append(f'{where}: selector {name} lacks {lab}=~"${lab}"')
        for lab, op, val in s["matchers"]:
            if variables_in(val) and op not in ("=~", "!~"):
                problems.append(f"{where}: selector {name} uses a variable with {op} ({lab}{op}\"{val}\"); "
                                f"use =~ so that multi-value and All work")
        if name.endswith("_total") and (s["func"] not in RATE_FUNCS or s["range"] is None):
            problems.append(f"{where}: counter {name} is used outside rate()/irate()/increase()")
        if s["func"] in RATE_FUNCS:
            rng = s["range"]
            if rng in ("$__rate_interval", "${__rate_interval}"):
                continue
            if fixed_ok is not None and rng == fixed_ok:
                continue
            problems.append(f"{where}: {s['func']}() over [{rng}]; use [$__rate_interval] "
                            f"(a fixed window only in a stat panel titled 'last {rng}')")


def lint_dashboard(path, dash, seen_uids, problems):
    def err(msg):
        problems.append(f"{path}: {msg}")

    if "__inputs" in dash:
        err("has __inputs; use the datasource variable instead")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 39:
        err(f"schemaVersion {dash.get('schemaVersion')!r} < 39")
    uid = dash.get("uid")
    if not uid:
        err("dashboard has no uid")
    elif uid in seen_uids:
        err(f"dashboard uid {uid!r} also used by {seen_uids[uid]}")
    else:
        seen_uids[uid] = path

    tvars = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = tvars.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        err("needs a variable 'datasource' of type datasource with query 'prometheus'")
    for name in REQUIRED_QUERY_VARS:
        v = tvars.get(name)
        if not v or v.get("type") != "query":
            err(f"needs a query variable '{name}'")
            continue
        if v.get("datasource") != PROM_DS:
            err(f"variable {name}: datasource must be {json.dumps(PROM_DS)}")
    for name, v in tvars.items():
        if v.get("type") != "query":
            continue
        sel = label_values_selector(v.get("query"))
        if sel is None:
            continue
        # the variable's own selector may only use variables defined before it
        for used in variables_in(sel):
            if used not in tvars:
                err(f"variable {name}: uses undefined variable ${used}")

    ids = {}
    for p in walk_panels(dash.get("panels")):
        ptitle = p.get("title") or ""
        where = f"{path}: panel {p.get('id')} '{ptitle}'"
        pid = p.get("id")
        if pid in ids:
            problems.append(f"{where}: id {pid} also used by panel '{ids[pid]}'")
        else:
            ids[pid] = ptitle
        if p.get("type") == "row":
            if not ptitle.strip():
                problems.append(f"{where}: row without a title")
            continue
        if not ptitle.strip():
            problems.append(f"{where}: empty title")
        if not (p.get("description") or "").strip():
            problems.append(f"{where}: empty description")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if not isinstance(unit, str) or not unit.strip():
            problems.append(f"{where}: no fieldConfig.defaults.unit")
        if p.get("datasource") != PROM_DS:
            problems.append(f"{where}: panel datasource must be {json.dumps(PROM_DS)}, "
                            f"not {json.dumps(p.get('datasource'))}")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        refids = set()
        for t in targets:
            ref = t.get("refId")
            twhere = f"{where} target {ref}"
            if ref in refids:
                problems.append(f"{twhere}: duplicate refId")
            refids.add(ref)
            if t.get("datasource") != PROM_DS:
                problems.append(f"{twhere}: datasource must be {json.dumps(PROM_DS)}, "
                                f"not {json.dumps(t.get('datasource'))}")
            expr = t.get("expr") or ""
            if not expr.strip():
                problems.append(f"{twhere}: empty expr")
                continue
            lint_expr(expr, twhere, p, tvars, problems)


def dashboard_exprs(path, dash):
    for v in dash.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            sel = label_values_selector(v.get("query"))
            if sel:
                yield f"{path}: variable {v.get('name')}", sel
    for p in walk_panels(dash.get("panels")):
        for t in p.get("targets") or []:
            if (t.get("expr") or "").strip():
                yield f"{path}: panel {p.get('id')} '{p.get('title')}' target {t.get('refId')}", t["expr"]


# --------------------------------------------------------------------------- rules files

def rules_exprs(path):
    """(source, expr) for every rule of a Prometheus rules file, read without PyYAML."""
    lines = open(path, encoding="utf-8").read().split("\n")
    name_re = re.compile(r"^\s*(?:-\s+)?(alert|record):\s*(.+?)\s*$")
    expr_re = re.compile(r"^(\s*(?:-\s+)?)expr:\s*(.*?)\s*$")
    out = []
    current = None
    names = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        m = name_re.match(line)
        if m:
            current = f"{m.group(1)} {m.group(2).strip(chr(39) + chr(34))}"
            names += 1
            i += 1
            continue
        m = expr_re.match(line)
        if not m:
            i += 1
            continue
        indent, value = len(m.group(1)), m.group(2)  # indent: the column of `expr`
        i += 1
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
        if re.fullmatch(r"[|>][-+]?\d?", value):
            body = block
            ind = min(len(b) - len(b.lstrip()) for b in body if b.strip()) if body else 0
            body = [b[ind:] for b in body]
            expr = ("\n" if value[0] == "|" else " ").join(body)
        elif value[:1] in ("'", '"'):
            if block:
                raise SystemExit(f"{path}: multi-line quoted expr of {current} is not supported")
            expr = value[1:-1].replace("''", "'") if value[0] == "'" else json.loads(value)
        else:
            expr = " ".join([value] + [b.strip() for b in block])
        if current is None:
            raise SystemExit(f"{path}: expr before any alert:/record: line")
        out.append((f"{path}: {current}", expr.strip()))
        current = None
    if len(out) != names:
        raise SystemExit(f"{path}: found {names} rules but {len(out)} exprs; the reader does not "
                         f"understand this file")
    return out


# --------------------------------------------------------------------------- main

def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("--print-exprs", action="store_true",
                    help='print every PromQL expression as JSON {"source": ..., "expr": ...}')
    ap.add_argument("--substitute", action="store_true",
                    help="with --print-exprs: replace Grafana variables so Prometheus accepts the exprs")
    args = ap.parse_args(argv)
    if args.substitute and not args.print_exprs:
        ap.error("--substitute only makes sense with --print-exprs")

    files = args.files
    if not files:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        files = sorted(glob.glob(os.path.join(root, "dashboards", "*.json"))) + \
            sorted(glob.glob(os.path.join(root, "alerts", "*.rules.yml")))
        files = [os.path.relpath(f) for f in files]
    dashboards = [f for f in files if f.endswith(".json")]
    rules = [f for f in files if f.endswith((".yml", ".yaml"))]
    other = [f for f in files if f not in dashboards and f not in rules]
    if other:
        ap.error(f"neither .json nor .yml: {' '.join(other)}")
    if not dashboards:
        ap.error("no dashboard given")

    problems = []
    seen_uids = {}
    exprs = []
    for path in dashboards:
        try:
            with open(path, encoding="utf-8") as fh:
                dash = json.load(fh)
        except (OSError, ValueError) as e:
            problems.append(f"{path}: cannot read: {e}")
            continue
        lint_dashboard(path, dash, seen_uids, problems)
        exprs.extend(dashboard_exprs(path, dash))
    for path in rules:
        exprs.extend(rules_exprs(path))

    if args.print_exprs:
        for source, expr in exprs:
            if args.substitute:
                expr = substitute(expr)
            print(json.dumps({"source": source, "expr": expr}, ensure_ascii=False))

    for p in problems:
        print(f"LINT: {p}", file=sys.stderr)
    if problems:
        print(f"dashboards_lint: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    if not args.print_exprs:
        n = sum(1 for s, _ in exprs if ": panel " in s)
        print(f"dashboards_lint: {len(dashboards)} dashboard(s), {n} panel queries OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
