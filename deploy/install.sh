#!/usr/bin/env sh
# Installs the `mes` command into a virtual environment of its own, from this repository: every dependency
# pinned with its hash (requirements.lock), then the project without resolving anything again. The container
# image runs exactly this (deploy/Dockerfile), so does CI (tests/deploy), and so can a gateway or a core host
# without containers (docs/deploy.md).
#
#   deploy/install.sh [PREFIX]        PREFIX defaults to /opt/mes; the command is then PREFIX/bin/mes
set -eu
source_dir=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-/opt/mes}
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "deploy/install.sh: Python 3.11 or newer is needed ($python is $("$python" -V 2>&1))" >&2; exit 1; }
echo "installing mes into $prefix from $source_dir"
"$python" -m venv "$prefix"
"$prefix/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r "$source_dir/requirements.lock"
"$prefix/bin/pip" install --quiet --disable-pip-version-check --no-deps "$source_dir"
"$prefix/bin/pip" check
"$prefix/bin/mes" --help >/dev/null
echo "installed: $prefix/bin/mes"
