"""Node.js packages of a test folder (tests/peers, tests/timescale), installed with `npm ci` from the folder's
package-lock.json: exactly the locked versions, on a fresh clone as after a change of the lock."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_MAJOR = 20
# In node_modules (which npm ci replaces whole): the digest of the lock it was installed from.
INSTALLED_LOCK = Path("node_modules") / ".installed-from-lock"


class NpmInstallFailed(RuntimeError):
    pass


def node_with_packages(folder: Path, needed_for: str) -> str:
    """The `node` executable, with `folder`'s locked packages installed (npm ci, unless node_modules came
    from this very lock). Skips the test, saying what for, only when Node.js 20+ or npm is absent; a failed
    install raises NpmInstallFailed with npm's complaint."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip(f"Node.js {NODE_MAJOR}+ and npm are needed for {needed_for}")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < NODE_MAJOR:
        pytest.skip(f"Node.js {NODE_MAJOR}+ is needed for {needed_for}; found {version}")
    digest = hashlib.sha256((folder / "package-lock.json").read_bytes()).hexdigest()
    stamp = folder / INSTALLED_LOCK
    if not stamp.is_file() or stamp.read_text() != digest:
        installed = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=folder, capture_output=True, text=True,
                                   timeout=600)
        if installed.returncode != 0:
            raise NpmInstallFailed(f"npm ci failed in {folder}:\n{installed.stderr[-2000:]}")
        stamp.write_text(digest)
    return node
