"""pip's cache directory as pip's own configuration makes it, checked against the real ``pip cache dir``,
and the purge that removes exactly the files it is given, from there only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from glibc_doctor.core.errors import WheelError
from glibc_doctor.core.pipcache import FileIdentity, PipCache, cached_wheels, config_files, pip_cache, purge

from tests.wheelbuild import make_wheel, pip_cache_of


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str]:
    """An environment with a private HOME and no pip or XDG variables of the caller."""
    (tmp_path / "home").mkdir()
    keep = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home")}
    keep["XDG_CONFIG_DIRS"] = str(tmp_path / "etc-xdg")  # no machine-wide /etc/xdg file interferes
    return keep


def real_pip_cache_dir(env: dict[str, str], prefix: Path | None = None) -> str | None:
    """``pip cache dir`` run by this python's pip (its ``sys.prefix`` is the venv running the tests)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "cache", "dir"], env=env, capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        assert "cache is disabled" in done.stderr, done.stderr
        return None
    return done.stdout.strip()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_by_default_the_cache_is_under_xdg_cache_home_or_dot_cache(home: dict[str, str]) -> None:
    assert pip_cache(sys.prefix, home).path == real_pip_cache_dir(home) == f"{home['HOME']}/.cache/pip"
    env = {**home, "XDG_CACHE_HOME": f"{home['HOME']}/xdg"}
    assert pip_cache(sys.prefix, env).path == real_pip_cache_dir(env) == f"{home['HOME']}/xdg/pip"


def test_pip_cache_dir_in_the_environment_wins(home: dict[str, str]) -> None:
    write(Path(home["HOME"]) / ".config/pip/pip.conf", "[global]\ncache-dir = /from/config\n")
    env = {**home, "PIP_CACHE_DIR": "/from/env"}
    found = pip_cache(sys.prefix, env)
    assert found.path == real_pip_cache_dir(env) == "/from/env"
    assert found.source == "$PIP_CACHE_DIR"


def test_pip_no_cache_dir_disables_it(home: dict[str, str]) -> None:
    env = {**home, "PIP_NO_CACHE_DIR": "1"}
    assert pip_cache(sys.prefix, env).path is None
    assert real_pip_cache_dir(env) is None


@pytest.mark.parametrize(
    "where",
    ["etc-xdg/pip/pip.conf", "home/.pip/pip.conf", "home/.config/pip/pip.conf", "xdg-config/pip/pip.conf"],
)
def test_a_cache_dir_in_a_global_or_user_file_is_read(
    home: dict[str, str], tmp_path: Path, where: str
) -> None:
    env = {**home, "XDG_CONFIG_HOME": str(tmp_path / "xdg-config")}
    if where.startswith("home/.config"):
        env.pop("XDG_CONFIG_HOME")
    config = write(tmp_path / where, "[global]\ncache-dir = ~/chosen\n")
    found = pip_cache(sys.prefix, env)
    assert found.path == real_pip_cache_dir(env) == f"{home['HOME']}/chosen"
    assert found.source == f"cache-dir in {config} [global]"


def test_later_files_override_earlier_ones(home: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "etc-xdg/pip/pip.conf", "[global]\ncache-dir = /global\n")
    write(Path(home["HOME"]) / ".pip/pip.conf", "[global]\ncache-dir = /legacy-user\n")
    write(Path(home["HOME"]) / ".config/pip/pip.conf", "[global]\ncache-dir = /user\n")
    assert pip_cache(sys.prefix, home).path == real_pip_cache_dir(home) == "/user"
    env_file = write(tmp_path / "env.conf", "[global]\ncache-dir = /env-file\n")
    env = {**home, "PIP_CONFIG_FILE": str(env_file)}
    assert pip_cache(sys.prefix, env).path == real_pip_cache_dir(env) == "/env-file"


def test_an_existing_pip_config_file_hides_the_user_files(home: dict[str, str], tmp_path: Path) -> None:
    write(tmp_path / "etc-xdg/pip/pip.conf", "[global]\ncache-dir = /global\n")
    write(Path(home["HOME"]) / ".config/pip/pip.conf", "[global]\ncache-dir = /user\n")
    env_file = write(tmp_path / "env.conf", "[global]\nindex-url = https://example.invalid/simple\n")
    env = {**home, "PIP_CONFIG_FILE": str(env_file)}
    assert pip_cache(sys.prefix, env).path == real_pip_cache_dir(env) == "/global"


def test_pip_config_file_dev_null_loads_no_file(home: dict[str, str], tmp_path: Path) -> None:
    write(Path(home["HOME"]) / ".config/pip/pip.conf", "[global]\ncache-dir = /user\n")
    env = {**home, "PIP_CONFIG_FILE": os.devnull}
    assert config_files(sys.prefix, env) == []
    assert pip_cache(sys.prefix, env).path == real_pip_cache_dir(env) == f"{home['HOME']}/.cache/pip"


def test_the_site_file_of_the_interpreters_prefix_is_read(home: dict[str, str], tmp_path: Path) -> None:
    prefix = tmp_path / "venv"
    config = write(prefix / "pip.conf", "[global]\nno-cache-dir = true\n")
    found = pip_cache(str(prefix), home)
    assert found.path is None
    assert found.source == f"no-cache-dir in {config} [global] disables it"


def test_the_install_section_overrides_global_for_pip_install(home: dict[str, str]) -> None:
    """pip's option parser applies [global], then the command's own section ([install] for ``pip
    install``, which is what fills the wheel cache), then the environment."""
    write(
        Path(home["HOME"]) / ".config/pip/pip.conf",
        "[install]\ncache-dir = /install\n[global]\ncache-dir = /g\n",
    )
    assert pip_cache(sys.prefix, home).path == "/install"


def test_a_broken_config_file_counts_as_absent(home: dict[str, str]) -> None:
    write(Path(home["HOME"]) / ".config/pip/pip.conf", "cache-dir = /no/section\n[[[")
    assert pip_cache(sys.prefix, home).path == f"{home['HOME']}/.cache/pip"


# --- the cached wheels and the purge -------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path) -> PipCache:
    wheels = [
        make_wheel(tmp_path / "built", name, "1.0", "py3-none-any", {f"{name}/__init__.py": b""})
        for name in ("alpha", "beta", "gamma")
    ]
    return PipCache(str(pip_cache_of(tmp_path / "cache", wheels)), "test")


def identity(path: str) -> FileIdentity:
    return FileIdentity.of(os.stat(path))


def test_the_cached_wheels_are_those_under_wheels_not_the_http_cache(cache: PipCache) -> None:
    found = cached_wheels(cache)
    assert found == sorted(found)
    assert {os.path.basename(path) for path in found} == {
        "alpha-1.0-py3-none-any.whl",
        "beta-1.0-py3-none-any.whl",
        "gamma-1.0-py3-none-any.whl",
    }
    assert all("/wheels/" in path for path in found)


def test_purge_removes_exactly_the_given_wheels(cache: PipCache) -> None:
    found = cached_wheels(cache)
    alpha = next(path for path in found if "alpha" in path)
    everything = {str(path) for path in Path(str(cache.path)).rglob("*")}
    purged = purge(cache, [(alpha, identity(alpha))])
    assert purged.removed == (alpha,)
    assert purged.kept == ()
    assert {str(path) for path in Path(str(cache.path)).rglob("*")} == everything - {alpha}


def test_purge_leaves_a_wheel_that_changed_since_the_check(cache: PipCache) -> None:
    beta = next(path for path in cached_wheels(cache) if "beta" in path)
    before = identity(beta)
    with open(beta, "ab") as handle:
        handle.write(b"changed")
    purged = purge(cache, [(beta, before)])
    assert purged.removed == ()
    assert purged.kept == ((beta, "changed since it was checked"),)
    assert os.path.exists(beta)


def test_purge_touches_nothing_outside_the_wheel_cache(cache: PipCache, tmp_path: Path) -> None:
    outside = make_wheel(tmp_path / "elsewhere", "delta", "1.0", "py3-none-any", {"delta/__init__.py": b""})
    http = Path(str(cache.path)) / "http-v2" / "a" / "entry"
    link_dir = Path(str(cache.wheels_dir)) / "zz"
    link_dir.mkdir()
    link = link_dir / "link-1.0-py3-none-any.whl"
    link.symlink_to(outside)
    purged = purge(cache, [(str(outside), None), (str(http), None), (str(link), None)])
    assert purged.removed == ()
    assert dict(purged.kept) == {
        str(outside): "not inside pip's wheel cache",
        str(http): "not a wheel file",
        str(link): "not a regular file",
    }
    assert outside.exists()
    assert http.exists()
    assert link.is_symlink()


def test_purge_of_a_disabled_cache_is_an_error() -> None:
    with pytest.raises(WheelError, match="disabled"):
        purge(PipCache(None, "test"), [])
