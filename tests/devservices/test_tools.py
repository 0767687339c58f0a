"""The dev servers' system tools: used where they are, installed from Debian's packages where not.

Nothing is uninstalled or installed here: ``shutil.which`` is made to find nothing and apt-get is a
recorder; one test runs the real detection on this machine (where ``make services`` has put them).
"""

from __future__ import annotations

import subprocess

import pytest

from devservices import tools


class Apt:
    """Records apt-get calls; once 'install' ran, the installed tools are 'on PATH'."""

    def __init__(self, installs: dict[str, str] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.installed: set[str] = set()
        self.installs = installs or {"default-jdk-headless": "java javac", "maven": "mvn", "golang-go": "go"}

    def __call__(self, argv, check=False, env=None):
        self.calls.append(list(argv))
        assert env["DEBIAN_FRONTEND"] == "noninteractive"
        if "install" in argv:
            for pkg in argv[argv.index("install") + 1:]:
                self.installed.update(self.installs.get(pkg, "").split())
        return subprocess.CompletedProcess(argv, 0)

    def which(self, name: str) -> str | None:
        if name in ("apt-get", "sudo"):
            return f"/usr/bin/{name}"
        return f"/usr/bin/{name}" if name in self.installed else None


@pytest.fixture
def apt(monkeypatch) -> Apt:
    rec = Apt()
    monkeypatch.setattr(tools.shutil, "which", rec.which)
    monkeypatch.setattr(tools, "GO_FALLBACKS", ())
    monkeypatch.setattr(tools.os, "geteuid", lambda: 0)
    return rec


def test_missing_tools_are_installed_with_debians_package_names_in_one_call(apt):
    paths = tools.ensure("java", "javac", "mvn", "go", run=apt)
    assert apt.calls == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "default-jdk-headless", "golang-go", "maven"],
    ]
    assert paths == {"java": "/usr/bin/java", "javac": "/usr/bin/javac", "mvn": "/usr/bin/mvn", "go": "/usr/bin/go"}


def test_a_tool_on_path_is_not_installed(apt):
    apt.installed = {"java", "javac"}
    tools.ensure("java", "javac", "mvn", run=apt)
    assert apt.calls[-1][-1:] == ["maven"]
    apt.calls.clear()
    tools.ensure("java", "javac", "mvn", run=apt)
    assert apt.calls == []


def test_go_in_usr_local_go_counts_as_present(apt, monkeypatch, tmp_path):
    go = tmp_path / "go"
    go.write_text("")
    monkeypatch.setattr(tools, "GO_FALLBACKS", (str(go),))
    assert tools.ensure("go", run=apt) == {"go": str(go)}
    assert apt.calls == []


def test_not_root_uses_sudo(apt, monkeypatch):
    monkeypatch.setattr(tools.os, "geteuid", lambda: 1000)
    tools.ensure("go", run=apt)
    assert all(call[0] == "sudo" for call in apt.calls)


def test_not_root_and_no_sudo_is_a_clear_error(apt, monkeypatch):
    monkeypatch.setattr(tools.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(tools.shutil, "which", lambda name: "/usr/bin/apt-get" if name == "apt-get" else None)
    with pytest.raises(RuntimeError, match="no sudo.*apt-get install golang-go"):
        tools.ensure("go", run=apt)
    assert apt.calls == []


def test_apt_failing_or_not_providing_the_tool_is_a_clear_error(apt):
    def failing(argv, check=False, env=None):
        raise subprocess.CalledProcessError(100, argv)

    with pytest.raises(RuntimeError, match="could not install maven"):
        tools.ensure("mvn", run=failing)
    apt.installs = {}
    with pytest.raises(RuntimeError, match="mvn still not on PATH"):
        tools.ensure("mvn", run=apt)


def test_go_too_old_for_go_install_at_version_is_refused(apt, monkeypatch):
    apt.installed = {"go"}
    monkeypatch.setattr(tools, "version", lambda argv, pattern: (1, 15))
    with pytest.raises(RuntimeError, match=r"needs Go 1\.16\+"):
        tools.go()
    monkeypatch.setattr(tools, "version", lambda argv, pattern: (1, 19))  # Debian bookworm's golang-go
    assert tools.go() == "/usr/bin/go"


def test_java_older_than_17_is_refused(apt, monkeypatch):
    apt.installed = {"java", "javac"}
    monkeypatch.setattr(tools, "version", lambda argv, pattern: (11,))
    with pytest.raises(RuntimeError, match="Kafka needs Java 17"):
        tools.java()


def test_version_parsing():
    assert tools.version(["sh", "-c", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2"],
                         r'version "(?:1\.)?(\d+)') == (17,)
    assert tools.version(["sh", "-c", "echo 'java version \"1.8.0_392\"'"], r'version "(?:1\.)?(\d+)') == (8,)
    assert tools.version(["echo", "go version go1.19.8 linux/amd64"], r"go(\d+)\.(\d+)") == (1, 19)


def test_real_detection_on_this_machine_installs_nothing():
    def refuse(argv, **kw):
        raise AssertionError(f"tried to install: {argv}")

    paths = tools.ensure("java", "javac", "mvn", "go", run=refuse)
    assert all(paths.values())
    assert tools.version([paths["go"], "version"], r"go(\d+)\.(\d+)") >= tools.MIN_GO
    assert tools.version([paths["java"], "-version"], r'version "(?:1\.)?(\d+)')[0] >= tools.MIN_JAVA
