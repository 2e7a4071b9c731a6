"""The notification script, the image and the CI workflow pass their linters and schemas.

Each check also runs once on a deliberately broken input, so a linter that silently does
nothing (missing, misconfigured, wrong arguments) fails here instead of passing everything.
"""

import tomllib

import pytest
import yaml
from infra_support import (
    DOCKERFILE,
    DOCKERIGNORE,
    NOTIFY_SCRIPT,
    PYPROJECT,
    ROOT,
    WORKFLOWS,
    run,
    tool,
)


def shellcheck(path) -> tuple[int, str]:
    result = run(tool("shellcheck"), "--shell=bash", "--severity=style", path)
    return result.returncode, result.stdout + result.stderr


def hadolint(path) -> tuple[int, str]:
    result = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", path)
    return result.returncode, result.stdout + result.stderr


def workflow_schema(path) -> tuple[int, str]:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", path)
    return result.returncode, result.stdout + result.stderr


def workflow_files() -> list:
    return sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))


def test_notification_script_passes_shellcheck() -> None:
    code, output = shellcheck(NOTIFY_SCRIPT)
    assert code == 0, output


def test_shellcheck_catches_an_unquoted_variable(tmp_path) -> None:
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nset -euo pipefail\nmc ls $ALIAS\n")
    code, output = shellcheck(script)
    assert code != 0
    assert "SC2086" in output


def test_notification_script_stops_at_the_first_error() -> None:
    lines = NOTIFY_SCRIPT.read_text().splitlines()
    assert lines[0] == "#!/usr/bin/env bash"
    assert "set -euo pipefail" in lines


def test_notification_script_checks_before_subscribing() -> None:
    """`mc event add` fails on an identical rule, so a second run must look first."""
    text = NOTIFY_SCRIPT.read_text()
    assert text.index("mc event ls") < text.index("mc event add")
    assert '--suffix "$suffix"' in text
    assert "mc mb --ignore-existing" in text


def test_dockerfile_passes_hadolint() -> None:
    code, output = hadolint(DOCKERFILE)
    assert code == 0, output


def test_hadolint_catches_an_unpinned_base_image(tmp_path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install falcon\n")
    code, output = hadolint(dockerfile)
    assert code != 0
    assert "DL3007" in output


def test_image_runs_as_a_non_root_user_from_a_slim_base() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert bases and all("-slim" in base for base in bases)
    final_stage = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    users = [line.split()[1] for line in final_stage if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for compiler in ("build-essential", "gcc", "apt-get install"):
        assert compiler not in DOCKERFILE.read_text()


def test_image_contains_every_package_the_project_ships() -> None:
    """A package missing from the build context installs an image that cannot import it."""
    project = tomllib.loads(PYPROJECT.read_text())
    packages = [
        pattern.rstrip("*")
        for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    copied = {
        source.rstrip("/")
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    }
    kept = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()}
    for package in packages:
        assert (ROOT / package / "__init__.py").exists(), package
        assert package in copied, f"the Dockerfile does not COPY {package}"
        assert f"!{package}/" in kept, f".dockerignore leaves {package} out of the build"
    for needed in ("pyproject.toml", "README.md"):
        assert needed in copied, needed
        assert f"!{needed}" in kept, needed


def test_there_is_a_workflow() -> None:
    assert workflow_files()


@pytest.mark.parametrize("workflow", workflow_files(), ids=lambda path: path.name)
def test_workflow_follows_the_github_schema(workflow) -> None:
    code, output = workflow_schema(workflow)
    assert code == 0, output


def test_the_workflow_schema_catches_a_job_without_a_runner(tmp_path) -> None:
    workflow = tmp_path / "broken.yml"
    workflow.write_text("name: broken\non: push\njobs:\n  build:\n    steps:\n      - run: make\n")
    code, output = workflow_schema(workflow)
    assert code != 0
    assert "runs-on" in output


@pytest.mark.parametrize("workflow", workflow_files(), ids=lambda path: path.name)
def test_workflow_shell_steps_pass_shellcheck(workflow, tmp_path) -> None:
    document = yaml.safe_load(workflow.read_text())
    for job_name, job in document["jobs"].items():
        for index, step in enumerate(job.get("steps", [])):
            if "run" not in step:
                continue
            script = tmp_path / f"{job_name}-{index}.sh"
            # GitHub runs each step with `bash -e`; the ${{ }} expressions are already text.
            script.write_text("#!/usr/bin/env bash\nset -e\n" + step["run"])
            code, output = shellcheck(script)
            assert code == 0, f"{workflow.name} job {job_name} step {index}:\n{output}"


def test_stack_workflow_uploads_a_zip_and_waits_for_stats() -> None:
    text = (WORKFLOWS / "stack.yml").read_text()
    assert "docker compose -f infra/compose.yml up" in text
    assert "Content-Type: application/zip" in text
    assert "$API/stats" in text
    assert "down --volumes" in text
