"""The container image (Dockerfile) as built by `.ci/image.sh`: its configuration, its contents,
and its real entrypoint run inside the image's filesystem with chroot, as the image's user.

`.ci/image.sh setup` builds the image with podman on a Debian base and unpacks it into
build/image (rootfs/, config.json); `IPFIX_ANTREA_IMAGE_DIR` points there. Without it the tests
skip with the reason the script recorded (`IPFIX_ANTREA_IMAGE_UNAVAILABLE`: which step could not
work on this machine); with `IPFIX_ANTREA_REQUIRE_IMAGE=1` (CI, when that step worked here before)
they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import orjson
import pytest
from collector_harness import messages

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on tcp://127\.0\.0\.1:(?P<port>\d+)")


class Image:
    """An unpacked image: its root filesystem and its configuration (podman's `.Config`)."""

    def __init__(self, directory: Path) -> None:
        self.rootfs = directory / "rootfs"
        self.config = json.loads((directory / "config.json").read_text())

    @property
    def env(self) -> dict[str, str]:
        return dict(item.split("=", 1) for item in self.config.get("Env") or [])

    def user(self) -> tuple[int, int]:
        user, _, group = self.config["User"].partition(":")
        return int(user), int(group)

    def run(self, args: Sequence[str], env: Mapping[str, str] | None = None,
            **popen: object) -> subprocess.Popen:
        """The image's entrypoint with ``args``, as a container runtime would start it: chroot
        into the root filesystem, the working directory, no supplementary groups, the image's
        user and group, and only the image's environment (plus ``env``)."""
        uid, gid = self.user()
        rootfs, workdir = str(self.rootfs), self.config.get("WorkingDir") or "/"

        def enter() -> None:
            os.chroot(rootfs)
            os.chdir(workdir)
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        return subprocess.Popen([*self.config["Entrypoint"], *args], env={**self.env, **(env or {})},
                                preexec_fn=enter, **popen)

    def site_packages(self) -> Path:
        (path,) = self.rootfs.glob("opt/ipfix-collect/lib/python3*/site-packages")
        return path


def _unavailable(reason: str) -> None:
    if os.environ.get("IPFIX_ANTREA_REQUIRE_IMAGE", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}, and IPFIX_ANTREA_REQUIRE_IMAGE is set", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def image() -> Image:
    directory = os.environ.get("IPFIX_ANTREA_IMAGE_DIR")
    if not directory:
        _unavailable(os.environ.get("IPFIX_ANTREA_IMAGE_UNAVAILABLE")
                     or "no image: run `.ci/image.sh setup` (as root) and `eval \"$(.ci/image.sh env)\"`")
    if os.geteuid() != 0:
        _unavailable("running the image with chroot needs root")
    return Image(Path(directory))


def version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def documents(stdout: bytes) -> list[dict]:
    return [orjson.loads(line) for line in stdout.splitlines()]


def test_the_entrypoint_is_ipfix_collect_as_a_numeric_non_root_user(image):
    assert image.config["Entrypoint"] == ["ipfix-collect"]
    uid, gid = image.user()
    assert uid != 0 and gid != 0
    assert f":{uid}:{gid}:" in (image.rootfs / "etc/passwd").read_text()


def test_it_listens_for_ipfix_on_4739_over_tcp_and_udp_by_default(image):
    assert set(image.config["ExposedPorts"]) == {"4739/tcp", "4739/udp"}
    assert image.env["IPFIX_COLLECT_INPUT"].split() == ["tcp://0.0.0.0:4739", "udp://0.0.0.0:4739"]


def test_its_labels_name_the_source_the_version_and_the_licence(image):
    labels = image.config["Labels"]
    assert labels["org.opencontainers.image.version"] == version()
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.source"].startswith("https://")


def test_the_user_owns_its_working_directory_and_none_of_the_code(image):
    uid, _ = image.user()
    workdir = image.rootfs / image.config["WorkingDir"].lstrip("/")
    assert workdir.stat().st_uid == uid
    owned = [p for p in (image.rootfs / "opt/ipfix-collect").rglob("*") if p.lstat().st_uid == uid]
    assert owned == []


def test_no_installer_or_build_tree_is_left_in_the_image(image):
    site = image.site_packages()
    assert not list(site.glob("pip")) and not list(site.glob("setuptools"))
    assert not (image.rootfs / "src").exists()
    assert not list(image.rootfs.glob("usr/bin/gcc*")) and not list(image.rootfs.glob("usr/bin/cc"))
    assert (site / "ipfix_antrea/data/sample-flow-aggregator.ipfix").is_file()


def test_the_bundled_sample_decodes_in_the_image_as_on_the_host(image):
    sample = image.site_packages() / "ipfix_antrea/data/sample-flow-aggregator.ipfix"
    inside = "/" + str(sample.relative_to(image.rootfs))
    proc = image.run(["--input", f"file:{inside}", "--sink", "stdout"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    host = subprocess.run([sys.executable, "-m", "ipfix_antrea.cli", "--input", f"file:{sample}",
                           "--sink", "stdout", "--quiet"], capture_output=True, check=True,
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    docs = documents(out)
    assert docs and docs == documents(host.stdout)


def test_records_sent_over_tcp_arrive_and_sigterm_drains_them(image):
    proc = image.run([], env={"IPFIX_COLLECT_INPUT": "tcp://127.0.0.1:0"},
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if match := LISTENING.search(line):
                break
        else:
            pytest.fail("the image's ipfix-collect never listened: " + "".join(lines))
        with socket.create_connection(("127.0.0.1", int(match["port"]))) as conn:
            conn.sendall(b"".join(messages(250, max_size=65535)))
        for line in proc.stderr:
            lines.append(line)
            if "session ended (250 records)" in line:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, "".join(lines) + err
    docs = documents(out.encode())
    assert len(docs) == 250
    assert {d["ipfix"]["octetDeltaCount"] for d in docs} == {1000 + i for i in range(250)}
