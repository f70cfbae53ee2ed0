"""The image, checked without a Docker engine: the Dockerfile parsed by Docker's parser, its
command and health check run here against the real CLI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy.code import REPO, console_scripts, default_setting, env_prefix, gateway_env_names
from tests.deploy.images import DockerIgnore, resolve_args, stages
from tests.deploy.running import Running, check, clean_env, entrypoint_argv, healthcheck_argv
from tests.procs import MASTER_KEY, free_port

COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|cc|make|python3?-dev|libc6?-dev)\b")


def final():  # type: ignore[no-untyped-def]
    return stages()[-1]


def test_multi_stage_build_leaves_compilers_in_the_builder() -> None:
    builder, *_ = stages()
    assert len(stages()) >= 2 and builder.name, "a named builder stage, then the final stage"
    assert any("pip wheel" in run.value[0] for run in builder.all("RUN")), "the builder builds wheels"
    for run in final().all("RUN"):
        assert not COMPILERS.search(run.value[0]), f"a compiler in the final image: {run.value[0]}"
    installs = [run for run in final().all("RUN") if "pip install" in run.value[0]]
    assert installs and all("--no-index" in run.value[0] for run in installs), "only the builder's wheels"
    assert any(f"from={builder.name}" in flag for run in installs for flag in run.flags)


def test_the_image_has_every_extra_a_setting_needs() -> None:
    """`otel_enabled` needs the `otel` extra: the builder makes its wheels and the final stage installs it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = {"otel"}
    assert needed <= set(project["project"]["optional-dependencies"])
    (build,) = [run.value[0] for run in stages()[0].all("RUN") if "pip wheel" in run.value[0]]
    (install,) = [run.value[0] for run in final().all("RUN") if "pip install" in run.value[0]]
    for extra in needed:
        assert f".[{extra}]" in build and f"{project['project']['name']}[{extra}]" in install, extra


def test_base_is_slim_python_of_the_supported_version() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    minimum = re.search(r">=\s*(\d+\.\d+)", project["project"]["requires-python"])
    assert minimum is not None
    for stage in stages():
        image = resolve_args(stage.base)
        assert image.startswith(f"python:{minimum[1]}-slim"), image


def test_final_stage_runs_as_a_non_root_user() -> None:
    user = final().last("USER").value[0]
    assert user.split(":")[0] not in ("root", "0"), user


def packages() -> set[str]:
    """The top-level packages pyproject.toml ships."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {p.rstrip("*").rstrip(".") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]}


def test_build_copies_every_package_and_the_context_holds_them() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = packages() | {"pyproject.toml", project["project"]["readme"]}
    builder = stages()[0]
    copied = {source.rstrip("/") for copy in builder.all("COPY") for source in copy.value[:-1]}
    assert needed <= copied, f"not copied into the builder: {needed - copied}"

    ignore = DockerIgnore((REPO / ".dockerignore").read_text())
    for package in packages():
        for path in (REPO / package).rglob("*"):
            relative = path.relative_to(REPO).as_posix()
            if path.is_file() and "__pycache__" not in relative:
                assert not ignore.excluded(relative), f"{relative} is left out of the build context"
    for kept_out in (".env", "deploy/compose/.env", ".git/config", ".gateway/keys.sqlite", "tests/conftest.py",
                     "gateway/__pycache__/app.cpython-311.pyc", ".venv/bin/python"):
        assert ignore.excluded(kept_out), f"{kept_out} would be sent to the build"


def test_the_wheel_the_builder_makes_holds_every_file_of_the_packages(tmp_path: Path) -> None:
    """The builder stage, replayed: its COPYs through .dockerignore, then its `pip wheel`."""
    builder = stages()[0]
    ignore = DockerIgnore((REPO / ".dockerignore").read_text())
    context = tmp_path / "src"
    copied: list[str] = []
    for copy in builder.all("COPY"):
        *sources, destination = copy.value
        for source in sources:
            origin = REPO / source
            files = [origin] if origin.is_file() else [p for p in origin.rglob("*") if p.is_file()]
            for path in files:
                relative = path.relative_to(REPO).as_posix()
                if ignore.excluded(relative):
                    continue
                inside = path.name if origin.is_file() else path.relative_to(origin).as_posix()
                target = context / destination / inside
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                copied.append(relative)
    (build,) = [run.value[0] for run in builder.all("RUN") if "pip wheel" in run.value[0]]
    wheels = tmp_path / "wheels"
    # Only the project's own wheel: the dependencies are not what is checked here.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-q", "--wheel-dir",
                    str(wheels), str(context)], check=True, timeout=300)
    (wheel,) = wheels.glob("*.whl")
    packaged = set(zipfile.ZipFile(wheel).namelist())
    left_out = [f for f in copied if f.startswith(tuple(p + "/" for p in packages())) and f not in packaged]
    assert "--wheel-dir /wheels" in build and not left_out, f"the image would lack: {left_out}"


def test_environment_and_port_are_the_gateway_settings() -> None:
    env = final().env()
    prefix = env_prefix()
    unknown = {name for name in env if name.startswith(prefix)} - gateway_env_names()
    assert not unknown, f"not settings of the gateway: {unknown}"
    port = int(env.get(f"{prefix}PORT", default_setting("port")))  # type: ignore[call-overload]
    assert [int(p.split("/")[0]) for p in final().last("EXPOSE").value] == [port]
    assert env.get(f"{prefix}HOST") == "0.0.0.0", "in a container the gateway must listen beyond loopback"
    assert env.get(f"{prefix}WORKERS", str(default_setting("workers"))) == "1", "one process per container"


def test_entrypoint_is_the_console_script() -> None:
    entrypoint = final().last("ENTRYPOINT")
    assert entrypoint.json and entrypoint.value[0] in console_scripts(), "exec form, so SIGTERM reaches it"


def test_command_serves_and_its_health_check_tells_up_from_down(tmp_path: Path) -> None:
    config_arg = "/etc/gateway/config.yaml"
    command = list(final().last("ENTRYPOINT").value) + list(final().last("CMD").value)
    assert config_arg in command
    config = tmp_path / "config.yaml"
    config.write_text("models: []\n")  # what the image places there (the RUN printf)
    argv = entrypoint_argv([str(config) if arg == config_arg else arg for arg in command])

    prefix = env_prefix()
    image_env = final().env()
    port = free_port()
    env = clean_env(image_env, {
        f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(port), f"{prefix}DATA_DIR": str(tmp_path),
        f"{prefix}MASTER_KEY": MASTER_KEY,
    })
    health = healthcheck_argv(final().last("HEALTHCHECK").value)
    gateway = Running(argv, env, tmp_path / "gateway.log")
    try:
        gateway.wait_healthy(health)
    finally:
        gateway.stop()
    assert check(health, env) != 0, "the health check passes with no gateway running"


@pytest.mark.parametrize("instruction", ["HEALTHCHECK", "CMD", "ENTRYPOINT"])
def test_exec_form(instruction: str) -> None:
    # Shell form would put /bin/sh in between: signals would not reach the gateway.
    assert final().last(instruction).json
