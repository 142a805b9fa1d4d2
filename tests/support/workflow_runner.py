"""Runs a GitHub Actions workflow's jobs locally, as GitHub would for one event, with stand-in commands on PATH.

What it reproduces (GitHub docs, "Workflow syntax for GitHub Actions", "Evaluate expressions", "Contexts"):
- a job runs when every job it `needs` succeeded and its `if` (an expression, `${{ }}` optional) is true;
- `${{ expr }}` in `env`, `run`, `outputs`, `concurrency` and `strategy.matrix` is replaced by its value before the
  step runs; `vars` holds repository variables and, in a job with an `environment`, that environment's variables;
- a `run` step is `bash -e <file>` (the default shell on Linux); $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY and
  $GITHUB_ENV are files; a step's `if` defaults to success(); job outputs come from step outputs;
- `strategy.matrix` is expanded (here: from a list or fromJSON), every combination is a job of its own;
- a job with `permissions: id-token: write` gets ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN, for an OIDC token whose
  subject is `repo:<owner>/<repo>:environment:<name>` in a job with an environment, else
  `repo:<owner>/<repo>:pull_request` for a pull request, else `repo:<owner>/<repo>:ref:<ref>` (GitHub docs, "About
  security hardening with OpenID Connect", example subject claims); the runner's `oidc` issues them;
- a job whose environment's deployment branches and tags do not admit the ref fails before its first step
  ("Managing environments for deployment", deployment branches and tags; a pull request is judged by its head
  branch, the lenient reading);
- `actions/checkout` gives every job a fresh copy of the repository (its own working tree and local state).
Anything else it does not know raises.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.waiting import HANG_GUARD

# ------------------------------------------------------------------------------------------------ expressions
_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*))"
)
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ValueError(f"cannot read expression at {text[pos:]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        pos = match.end()
    return found


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()  # GitHub compares strings ignoring case
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        try:
            return float(a) == float(b)
        except (TypeError, ValueError):
            return False
    return a == b


class Expression:
    """GitHub's expression language, the part workflows here use."""

    def __init__(self, text: str, context: dict[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.context = context

    def value(self) -> Any:
        result = self._or()
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]}")
        return result

    def _peek(self) -> str | None:
        return self.tokens[self.pos][1] if self.pos < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.pos]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected}, got {token}")
        self.pos += 1
        return token

    def _or(self) -> Any:  # a || b: the first truthy operand, else the last
        return self._chain("||", self._and, lambda left, right: left if left else right)

    def _and(self) -> Any:  # a && b: the first falsy operand, else the last
        return self._chain("&&", self._compare, lambda left, right: right if left else left)

    def _chain(self, op: str, operand: Any, combine: Any) -> Any:
        left = operand()
        while self._peek() == op:
            self._take()
            left = combine(left, operand())
        return left

    def _compare(self) -> Any:
        left = self._unary()
        if self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            return _equal(left, right) if op == "==" else not _equal(left, right)
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind != "name":
            raise ValueError(f"unexpected {text!r}")
        if self._peek() == "(":
            self._take("(")
            args = []
            while self._peek() != ")":
                args.append(self._or())
                if self._peek() == ",":
                    self._take(",")
            self._take(")")
            return self._call(text, args)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        node: Any = self.context
        for part in text.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def _call(self, name: str, args: list[Any]) -> Any:
        status = self.context.get("job_status", "success")
        functions = {
            "startsWith": lambda s, p: _text(s).casefold().startswith(_text(p).casefold()),
            "contains": lambda s, p: _text(p).casefold() in _text(s).casefold(),
            "fromJSON": lambda s: json.loads(s),
            "toJSON": lambda v: json.dumps(v),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: _text(a[int(m[1])]), f),
            "success": lambda: status == "success",
            "failure": lambda: status == "failure",
            "always": lambda: True,
            "cancelled": lambda: False,
        }
        if name not in functions:
            raise ValueError(f"unknown function {name}")
        return functions[name](*args)


def evaluate(text: str, context: dict[str, Any]) -> Any:
    """An `if:` value: an expression with or without ${{ }}."""
    whole = EXPRESSION.fullmatch(text.strip())
    return Expression(whole[1] if whole else text, context).value()


def substitute(value: Any, context: dict[str, Any]) -> Any:
    """Replace every ${{ }} in a string (or in the strings of a list or map) by its value."""
    if isinstance(value, dict):
        return {k: substitute(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, context) for v in value]
    if not isinstance(value, str):
        return value
    whole = EXPRESSION.fullmatch(value.strip())
    if whole:
        return Expression(whole[1], context).value()
    return EXPRESSION.sub(lambda m: _text(Expression(m[1], context).value()), value)


# ------------------------------------------------------------------------------------------------ running
@dataclass
class Repository:
    """The repository the workflow belongs to: its files, variables and environments."""

    root: Path
    full_name: str = "acme/board"
    variables: dict[str, str] = field(default_factory=dict)  # repository variables
    environments: dict[str, dict[str, str]] = field(default_factory=dict)  # environment -> its variables
    # environment -> the refs (fnmatch patterns) its "Deployment branches and tags" rule admits; absent: any
    deployment_refs: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class JobRun:
    job: str
    matrix: dict[str, Any]
    environment: str | None
    result: str  # success, failure, skipped
    env: dict[str, str]
    summary: str
    log: str
    outputs: dict[str, str]
    concurrency: str | None


@dataclass
class Run:
    jobs: list[JobRun]

    def ran(self, job: str) -> list[JobRun]:
        return [j for j in self.jobs if j.job == job and j.result != "skipped"]


# The real Databricks CLI and Python are first on PATH already.
ACTIONS_WITHOUT_EFFECT = ("databricks/setup-cli@", "actions/setup-python@", "actions/setup-go@")
# The step that builds the CLI from .github/databricks-cli/go.mod: satisfied by the CLI on PATH (already built from
# the same module by scripts/databricks-cli.sh) once that CLI is the version the go.mod pins.
CLI_BUILD_STEP = "databricks-cli"
CLI_MODULE = Path(".github") / "databricks-cli" / "go.mod"


def _cli_stand_in(workspace: Path, env: dict[str, str]) -> tuple[bool, str]:
    """Whether the CLI on PATH is the one the build step would build, and what was compared."""
    found = re.search(r"^require github\.com/databricks/cli (v[0-9.]+)", (workspace / CLI_MODULE).read_text(), re.M)
    pinned = found.group(1) if found else None
    done = subprocess.run(["databricks", "version"], env=env, capture_output=True, text=True, timeout=HANG_GUARD)
    said = done.stdout.strip()
    return pinned is not None and said == f"Databricks CLI {pinned}", f"go.mod pins {pinned}; PATH has {said!r}"


@dataclass
class Runner:
    """Where jobs run: the repository, the stand-ins' directory (first on PATH), scratch space, the base environment."""

    repository: Repository
    bin_dir: Path
    scratch: Path
    base_env: dict[str, str]
    oidc: Any = None  # issues OIDC request tokens: .request_token(subject) -> (url, token)


def run_workflow(workflow_path: Path, event_name: str, ref: str, payload: dict[str, Any], runner: Runner) -> Run:
    """Run every job the event triggers, in `needs` order; returns what each job did."""
    repository = runner.repository
    workflow = yaml.safe_load(workflow_path.read_text())
    triggers = workflow.get("on", workflow.get(True))
    if event_name not in triggers:
        return Run([])
    github = {
        "event_name": event_name,
        "ref": ref,
        "ref_name": ref.rsplit("/", 1)[-1],
        "repository": repository.full_name,
        "repository_owner": repository.full_name.split("/")[0],
        "event": payload,
        "token": "ghs_standin_token",
    }
    results: dict[str, dict[str, Any]] = {}
    runs: list[JobRun] = []
    pending = dict(workflow["jobs"])
    while pending:
        ready = [n for n, j in pending.items() if all(d in results for d in _needs(j))]
        if not ready:
            raise ValueError(f"jobs wait on each other: {sorted(pending)}")
        for name in ready:
            job = pending.pop(name)
            needs = {d: results[d] for d in _needs(job)}
            context = {"github": github, "needs": needs, "vars": dict(repository.variables), "job_status": "success"}
            upstream_ok = all(n["result"] == "success" for n in needs.values())
            condition = job.get("if", "success()")
            if not upstream_ok and "always()" not in str(condition):
                wanted = False
            else:
                wanted = bool(evaluate(str(condition), context))
            if not wanted:
                runs.append(JobRun(name, {}, job.get("environment"), "skipped", {}, "", "", {}, None))
                results[name] = {"result": "skipped", "outputs": {}}
                continue
            done = [_run_job(name, job, matrix, workflow, context, runner) for matrix in _matrix(job, context)]
            runs.extend(done)
            failed = any(j.result == "failure" for j in done)
            outputs = done[-1].outputs if done else {}
            results[name] = {"result": "failure" if failed else "success", "outputs": outputs}
    return Run(runs)


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def _matrix(job: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    matrix = (job.get("strategy") or {}).get("matrix")
    if not matrix:
        return [{}]
    axes = {k: substitute(v, context) for k, v in matrix.items()}
    for key, values in axes.items():
        if not isinstance(values, list):
            raise ValueError(f"matrix {key} is not a list: {values!r}")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def _run_job(
    name: str,
    job: dict[str, Any],
    matrix: dict[str, Any],
    workflow: dict[str, Any],
    outer: dict[str, Any],
    runner: Runner,
) -> JobRun:
    repository, base_env = runner.repository, runner.base_env
    environment = job.get("environment")
    if isinstance(environment, dict):
        environment = environment["name"]
    context = {**outer, "matrix": matrix, "steps": {}}
    if environment:
        context["vars"] = {**repository.variables, **repository.environments.get(environment, {})}
    suffix = "-".join(_text(v) for v in matrix.values())
    home = runner.scratch / f"{name}{'-' + suffix if suffix else ''}"
    home.mkdir(parents=True)
    workspace = home / "workspace"
    workspace.mkdir()
    (home / "tmp").mkdir()
    files = {key: home / key.lower() for key in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "GITHUB_ENV")}
    env = {
        **base_env,
        "PATH": f"{runner.bin_dir}:{base_env.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": outer["github"]["event_name"],
        "GITHUB_REF": outer["github"]["ref"],
        "GITHUB_REPOSITORY": repository.full_name,
        "GITHUB_WORKSPACE": str(workspace),
        "RUNNER_TEMP": str(home / "tmp"),
        **{k: str(v) for k, v in files.items()},
    }
    permissions = job.get("permissions", workflow.get("permissions"))
    if isinstance(permissions, dict) and permissions.get("id-token") == "write" and runner.oidc is not None:
        github = outer["github"]
        if environment:
            subject = f"environment:{environment}"
        elif github["event_name"] == "pull_request":
            subject = "pull_request"
        else:
            subject = f"ref:{github['ref']}"
        url, token = runner.oidc.request_token(f"repo:{repository.full_name}:{subject}")
        env["ACTIONS_ID_TOKEN_REQUEST_URL"] = url
        env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = token
    for scope in (workflow.get("env") or {}, job.get("env") or {}):
        env.update({k: _text(substitute(v, context)) for k, v in scope.items()})
    concurrency = job.get("concurrency")
    group = substitute(concurrency.get("group") if isinstance(concurrency, dict) else concurrency, context)
    for path in files.values():
        path.touch()
    log: list[str] = []
    status = "success"
    refused = _refused(environment, outer["github"], repository)
    if refused:
        log.append(refused)
        status = "failure"
    for index, step in enumerate([] if refused else job["steps"]):
        context["job_status"] = status
        if not evaluate(str(step.get("if", "success()")), context):
            continue
        step_env = {**env, **{k: _text(substitute(v, context)) for k, v in (step.get("env") or {}).items()}}
        for path in files.values():
            path.touch()
        if step.get("id") == CLI_BUILD_STEP:
            ok, compared = _cli_stand_in(workspace, step_env)
            log.append(f"[stand-in {CLI_BUILD_STEP}] {compared}")
            status = status if ok else "failure"
            continue
        if "uses" in step:
            uses = step["uses"]
            if uses.startswith("actions/checkout@"):
                shutil.copytree(repository.root, workspace, dirs_exist_ok=True)
            elif not uses.startswith(ACTIONS_WITHOUT_EFFECT):
                raise ValueError(f"{name}: no stand-in for action {uses}")
            log.append(f"[uses {uses}]")
            continue
        script = home / f"step-{index}.sh"
        script.write_text(substitute(step["run"], context))
        files["GITHUB_OUTPUT"].write_text("")
        done = subprocess.run(
            ["bash", "-e", str(script)], cwd=workspace, env=step_env, capture_output=True, text=True, timeout=HANG_GUARD
        )
        log.append(
            f"[run {step.get('name') or step.get('id') or index}] exit {done.returncode}\n{done.stdout}{done.stderr}"
        )
        if step.get("id"):
            context["steps"][step["id"]] = {"outputs": _outputs(files["GITHUB_OUTPUT"].read_text())}
        if done.returncode != 0:
            status = "failure"
    context["job_status"] = status
    outputs = {k: _text(substitute(v, context)) for k, v in (job.get("outputs") or {}).items()}
    return JobRun(
        name,
        matrix,
        environment,
        status,
        env,
        files["GITHUB_STEP_SUMMARY"].read_text(),
        "\n".join(log),
        outputs,
        group,
    )


def _refused(environment: str | None, github: dict[str, Any], repository: Repository) -> str | None:
    """GitHub's refusal of a job whose environment does not admit this ref, or None."""
    allowed = repository.deployment_refs.get(environment or "")
    if not environment or allowed is None:
        return None
    ref = github["ref"]
    if github["event_name"] == "pull_request":
        ref = "refs/heads/" + (((github["event"].get("pull_request") or {}).get("head") or {}).get("ref") or "")
    if any(fnmatch.fnmatchcase(ref, pattern) for pattern in allowed):
        return None
    name = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    return f"{name} is not allowed to deploy to {environment} due to environment protection rules."


def _outputs(text: str) -> dict[str, str]:
    found = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            key, marker = line.split("<<", 1)
            found[key] = "\n".join(iter(lambda: next(lines), marker))
        elif "=" in line:
            key, value = line.split("=", 1)
            found[key] = value
    return found
