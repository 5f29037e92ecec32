"""What gets shipped: the wheel and sdist carry their data and the wheel runs; npm packs tether.js.

The wheel is built as a user would (``python -m build``, with the locked
hatchling: ``--no-isolation`` keeps the test off the network), installed with
uv into a fresh venv beside the dependencies ``uv.lock`` pins (uv's cache
makes that a few seconds), and run as ``tether serve`` from a directory
outside the repository against a real ``redis-server``. The npm package is
packed with ``npm pack`` and installed from its tarball into a throwaway app
with ``--offline``: it has no dependencies, so no registry is asked.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from redis_kit import start_redis_server

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
STATIC = SRC / "tether" / "service" / "static"
JS = ROOT / "clients" / "js"
NPM_FILES = (
    "tether.js",
    *sorted(f"tether/{path.name}" for path in (STATIC / "tether").glob("*.js")),
    "tether.d.ts",
    "tether-dialog.css",
)
"""What the npm package ships: the files the server serves under ``/static/`` (the entry
module, every module it imports from static/tether/, its types and the dialog CSS)."""
ADMIN_TOKEN = "packaging-test-admin-token"
SECRET = "packaging-test-secret-0123456789abcdef"
STEP_TIMEOUT = 120.0
START_TIMEOUT = 30.0


def run(
    args: list[str | Path], *, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion in ``cwd``; fail with its output if it fails."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    output = f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"{args} failed:\n{output}"
    return result


def tool(name: str, *candidates: Path) -> str:
    """The path of a command the packaging tests need; fail, naming how to get it."""
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: the packaging tests need it (make test installs it)")
    return found


def data_files() -> list[str]:
    """Every file under src/tether that is not Python: what the package loads at run time."""
    return sorted(
        path.relative_to(SRC).as_posix()
        for path in (SRC / "tether").rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


def modules() -> list[str]:
    """Every Python module under src/tether."""
    return sorted(path.relative_to(SRC).as_posix() for path in (SRC / "tether").rglob("*.py"))


def outside_env(venv: Path | None = None) -> dict[str, str]:
    """The environment with no trace of this checkout or of tether settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
        and not key.startswith("TETHER_")
        and key not in ("SESSION_TIMEOUT", "SESSION_CHECK_INTERVAL", "AUTO_ARCHIVE_ON_DISCONNECT")
    }
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    return env


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT], cwd=out)
    (wheel,) = out.glob("tether-*.whl")
    (sdist,) = out.glob("tether-*.tar.gz")
    return Dist(wheel, sdist)


def test_the_package_has_data_to_ship() -> None:
    """The run-time data the checks below look for exists: static files, Lua scripts, py.typed."""
    found = data_files()
    assert "tether/service/static/tether.js" in found
    assert "tether/store/lua/create.lua" in found
    assert "tether/py.typed" in found
    assert len([name for name in found if name.endswith(".lua")]) >= 10


def test_the_wheel_carries_every_module_and_data_file(dist: Dist) -> None:
    """The wheel (built from the sdist) holds every module and every static, Lua and marker file."""
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    missing = [name for name in modules() + data_files() if name not in names]
    assert missing == []
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "tether = tether.cli:main" in zipfile.ZipFile(dist.wheel).read(entry_points).decode()


def test_the_sdist_carries_the_sources_data_and_js_package(dist: Dist) -> None:
    """The sdist has the package with its data, the npm package and tests; no local caches."""
    with tarfile.open(dist.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wanted = [f"src/{name}" for name in modules() + data_files()] + [
        "pyproject.toml",
        "uv.lock",
        "README.md",
        "clients/js/package.json",
        "clients/js/scripts/dist.mjs",
        "tests/test_packaging.py",
    ]
    assert [name for name in wanted if name not in names] == []
    junk = [name for name in names if name.startswith((".", "data/", "clients/js/dist/"))]
    assert [name for name in junk if name != ".gitignore"] == []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def installed(dist: Dist, tmp_path: Path) -> Path:
    """A fresh venv holding the wheel and exactly the dependencies uv.lock pins."""
    uv = tool("uv", ROOT / ".tools" / "bin" / "uv")
    venv = tmp_path / "venv"
    env = outside_env()
    run([uv, "venv", "--quiet", "--python", sys.executable, venv], cwd=tmp_path, env=env)
    pins = tmp_path / "pins.txt"
    export = ["export", "--quiet", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes"]
    run([uv, *export, "--output-file", pins], cwd=ROOT, env=env)
    python = venv / "bin" / "python"
    install: list[str | Path] = ["pip", "install", "--quiet", "--python", python, "-r", pins]
    run([uv, *install, dist.wheel], cwd=tmp_path, env=env)
    return venv


@contextmanager
def serving(venv: Path, workdir: Path, redis_url: str) -> Iterator[str]:
    """``tether serve`` from ``venv``, run in ``workdir``, on Redis; its URL once it is ready."""
    port = free_port()
    log = workdir / "serve.log"
    args = [venv / "bin" / "tether", "serve", "--port", str(port), "--redis-url", redis_url]
    args += ["--secret", SECRET, "--admin-token", ADMIN_TOKEN, "--data-dir", workdir / "data"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(a) for a in args], cwd=workdir, env=outside_env(venv), stdout=out, stderr=out
        )
    url = f"http://127.0.0.1:{port}"
    try:
        give_up = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, f"tether serve exited:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < give_up, f"tether serve not ready:\n{log.read_text()}"
            try:
                if httpx.get(url + "/ready", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.005)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(START_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_installed_wheel_serves_tether_js_and_runs_the_redis_scripts(
    installed: Path, tmp_path: Path
) -> None:
    """`tether serve` from the installed wheel (not this checkout) serves /static/tether.js and
    creates a session on Redis, which runs the store's Lua scripts from the package data."""
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    where = run(
        [installed / "bin" / "python", "-c", "import tether; print(tether.__file__)"],
        cwd=workdir,
        env=outside_env(installed),
    ).stdout.strip()
    assert Path(where).is_relative_to(installed), where
    (tmp_path / "redis").mkdir()
    redis = start_redis_server(tmp_path / "redis")
    try:
        with serving(installed, workdir, redis.url) as url, httpx.Client(base_url=url) as http:
            client = http.get("/static/tether.js")
            assert client.status_code == 200
            assert client.content == (STATIC / "tether.js").read_bytes()
            assert http.get("/health").json()["store"]["kind"] == "redis"
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            created = http.post("/api/v1/sessions", headers=admin, json={"user": "packaged"})
            assert created.status_code == 201, created.text
            session = http.get(f"/api/v1/sessions/{created.json()['id']}", headers=admin).json()
            assert (session["user"], session["state"]) == ("packaged", "active")
            assert http.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    finally:
        redis.stop()


# -- the npm package -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def npm() -> str:
    """npm, the ordinary client, as a front end would use it."""
    return tool("npm")


@pytest.fixture(scope="module")
def tarball(npm: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of clients/js, into a temp dir."""
    out = tmp_path_factory.mktemp("npm")
    packed = json.loads(run([npm, "pack", "--json", "--pack-destination", out], cwd=JS).stdout)
    filename: str = packed[0]["filename"]
    return out / filename


def test_npm_pack_ships_the_files_the_server_serves(tarball: Path) -> None:
    """The tarball holds tether.js with its modules, its .d.ts and the dialog CSS, byte for byte
    the served files, and nothing else but package.json and README; packing leaves no copy in
    the repository."""
    with tarfile.open(tarball) as archive:
        names = sorted(archive.getnames())
        assert names == sorted(
            ["package/package.json", "package/README.md"] + [f"package/dist/{n}" for n in NPM_FILES]
        )
        for name in NPM_FILES:
            member = archive.extractfile(f"package/dist/{name}")
            assert member is not None
            assert member.read() == (STATIC / name).read_bytes(), name
    assert not (JS / "dist").exists()


def test_npm_package_version_is_the_python_version() -> None:
    """package.json's version is pyproject's, in semver spelling (0.1.0.dev0: 0.1.0-dev.0)."""
    python = Version(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])
    semver = python.base_version
    if python.dev is not None:
        semver += f"-dev.{python.dev}"
    package = json.loads((JS / "package.json").read_text())
    assert package["version"] == semver


CONSUMER = """
const client = await import("tether-client");
const out = {
  protocol: client.PROTOCOL_VERSION,
  connect: typeof client.connect,
  dialog: typeof client.showWarningDialog,
  css: import.meta.resolve("tether-client/tether-dialog.css"),
  main: import.meta.resolve("tether-client"),
};
try {
  await import("tether-client/dist/tether.js");
  out.private = "importable";
} catch (error) {
  out.private = error.code;
}
console.log(JSON.stringify(out));
"""


def test_a_front_end_installs_the_tarball_and_imports_it_by_name(
    npm: str, tarball: Path, tmp_path: Path
) -> None:
    """Installed offline from the tarball, `import "tether-client"` resolves through `exports`
    to tether.js (types beside it); only the exported paths are reachable."""
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(
        json.dumps({"name": "app", "private": True, "type": "module"})
    )
    run([npm, "install", "--offline", "--no-audit", "--no-fund", tarball], cwd=app)
    node = tool("node")
    result = run([node, "--input-type=module", "-e", CONSUMER], cwd=app)
    seen = json.loads(result.stdout)
    installed = app / "node_modules" / "tether-client"
    assert seen["protocol"] == 1
    assert (seen["connect"], seen["dialog"]) == ("function", "function")
    assert seen["main"] == (installed / "dist" / "tether.js").as_uri()
    assert seen["css"] == (installed / "dist" / "tether-dialog.css").as_uri()
    assert seen["private"] == "ERR_PACKAGE_PATH_NOT_EXPORTED"
    shipped = json.loads((installed / "package.json").read_text())
    types = installed / shipped["exports"]["."]["types"]
    assert types == installed / shipped["types"]
    assert types.read_bytes() == (STATIC / "tether.d.ts").read_bytes()
