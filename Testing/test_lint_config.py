"""The lint tools run at one version everywhere: `make lint` and CI install pyproject's `lint` extra, and the
pre-commit hooks (.pre-commit-config.yaml) must pin the very same versions, or a commit passes one and fails the
other. The config is read as text (no YAML library in the test extra): each `- repo:` line, then its `rev:`."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: pre-commit's repository for each tool of the lint extra (the tool's own mirror, where it has one).
HOOK_REPOS = {
    "ruff": "https://github.com/astral-sh/ruff-pre-commit",
    "codespell": "https://github.com/codespell-project/codespell",
    "mypy": "https://github.com/pre-commit/mirrors-mypy",
}


def lint_pins(pyproject_text):
    """{tool: version} of the `lint` extra's exact pins (`name==version`)."""
    import tomllib

    extra = tomllib.loads(pyproject_text)["project"]["optional-dependencies"]["lint"]
    pins = {}
    for requirement in extra:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^;\s]+)", requirement.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def hook_revs(config_text):
    """{repository URL: rev} of a .pre-commit-config.yaml."""
    revs, repo = {}, None
    for line in config_text.splitlines():
        code = line.split("#", 1)[0].strip()
        if code.startswith("- repo:"):
            repo = code[len("- repo:") :].strip()
        elif code.startswith("rev:") and repo is not None:
            revs[repo] = code[len("rev:") :].strip().strip("'\"")
            repo = None
    return revs


def read(name):
    with open(os.path.join(REPO, name), encoding="utf-8") as handle:
        return handle.read()


def mismatches(pyproject_text, config_text):
    pins, revs = lint_pins(pyproject_text), hook_revs(config_text)
    found = []
    for tool, url in HOOK_REPOS.items():
        if tool not in pins:
            found.append(f"the lint extra does not pin {tool} (name=={tool} version)")
        elif url not in revs:
            found.append(f".pre-commit-config.yaml has no {url} hook for {tool}")
        elif revs[url] != "v" + pins[tool]:
            found.append(f"{tool}: pre-commit rev {revs[url]}, lint extra {pins[tool]}")
    return found


def test_pre_commit_hooks_pin_the_lint_extras_versions():
    assert mismatches(read("pyproject.toml"), read(".pre-commit-config.yaml")) == []


def test_a_drifted_or_missing_hook_is_reported():
    """The comparison itself: a rev bumped on one side only, or a tool without a hook, is named."""
    pyproject, config = read("pyproject.toml"), read(".pre-commit-config.yaml")
    ruff = lint_pins(pyproject)["ruff"]
    bumped = config.replace(f"rev: v{ruff}", "rev: v0.0.1")
    assert bumped != config
    assert mismatches(pyproject, bumped) == [f"ruff: pre-commit rev v0.0.1, lint extra {ruff}"]
    without_mypy = config.replace(HOOK_REPOS["mypy"], "https://example.invalid/other")
    assert mismatches(pyproject, without_mypy) == [f".pre-commit-config.yaml has no {HOOK_REPOS['mypy']} hook for mypy"]


def test_make_lint_runs_every_tool_of_the_extra():
    """The Makefile's lint target runs what the extra installs, and CI runs the lint target."""
    makefile = read("Makefile")
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    for command in ("ruff check", "ruff format --check", "codespell", "mypy"):
        assert f"$(VENV)/bin/{command}" in lint
    assert "make lint" in read(".ci/run")


#: The typed surface (README, Development): every function of these modules annotates its parameters and its
#: return, and mypy (`make lint`) holds them to it with `disallow_untyped_defs`.
TYPED_SURFACE = ("pipeline.py", "records.py", "settings.py", "mask.py", "fill.py", "io/volume.py", "engines")


def typed_surface_files():
    core = os.path.join(REPO, "CTADeface", "CTADefaceLib")
    for entry in TYPED_SURFACE:
        path = os.path.join(core, entry)
        if entry.endswith(".py"):
            yield path
            continue
        for dirpath, _, names in os.walk(path):
            yield from (os.path.join(dirpath, n) for n in sorted(names) if n.endswith(".py"))


def unannotated(path):
    """'file:line name' of each function with an unannotated parameter (self and cls aside) or no return type."""
    import ast

    tree = ast.parse(read(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            params = args.posonlyargs + args.args + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]
            missing = [a.arg for a in params if a.annotation is None and a.arg not in ("self", "cls")]
            if missing or node.returns is None:
                found.append(f"{os.path.relpath(path, REPO)}:{node.lineno} {node.name}")
    return found


def test_the_typed_surface_annotates_every_function():
    files = list(typed_surface_files())
    assert any(f.endswith(os.path.join("nnunet", "region.py")) for f in files)
    assert [name for path in files for name in unannotated(path)] == []


def test_mypy_holds_the_typed_surface_to_its_annotations():
    """pyproject's strict override names every module of the typed surface (or a wildcard above it)."""
    import tomllib

    overrides = tomllib.loads(read("pyproject.toml"))["tool"]["mypy"]["overrides"]
    strict = {m for o in overrides if o.get("disallow_untyped_defs") for m in o["module"]}
    core = os.path.join(REPO, "CTADeface")
    for path in typed_surface_files():
        parts = os.path.relpath(path, core)[: -len(".py")].split(os.sep)
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        covered = module in strict or any(m.endswith(".*") and module.startswith(m[:-1]) for m in strict)
        assert covered, f"{module} is not in pyproject's disallow_untyped_defs override"
