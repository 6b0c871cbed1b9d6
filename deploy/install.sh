#!/bin/sh
# ClusterCord's install recipe, the one the Containerfile runs and tests/deploy/test_install.py
# runs in a fresh virtual environment (so the recipe is checked where no image can be built).
#
#   deploy/install.sh wheels OUT           build the wheels of the workspace members the bot
#                                          runs (sdk, kernel, builtin_plugins) into OUT
#   deploy/install.sh install WHEELS PREFIX  make a virtual environment at PREFIX and install
#                                          those wheels (third-party dependencies come from the
#                                          package index pip is configured with)
#
# The builtin plugins are trusted by their SIGNATURE.asc: sign them before `wheels` (a release
# build: `CLUSTERCORD_SIGNING_KEY=… clustercord keys sign --builtins`, see README) so the
# signatures are inside the wheels and listed in their RECORD.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
members="sdk kernel builtin_plugins"

case "${1:-}" in
wheels)
    out=${2:?usage: install.sh wheels OUT}
    mkdir -p "$out"
    for member in $members; do
        python3 -m pip wheel --quiet --no-deps --wheel-dir "$out" "$here/$member"
    done
    if ! ls "$here"/builtin_plugins/src/clustercord_builtins/*/SIGNATURE.asc >/dev/null 2>&1; then
        echo "install.sh: warning: the builtin plugins are not signed; the kernel will refuse" \
            "them until they are (see README, Run it in your cluster)" >&2
    fi
    ;;
install)
    wheels=${2:?usage: install.sh install WHEELS PREFIX}
    prefix=${3:?usage: install.sh install WHEELS PREFIX}
    python3 -m venv "$prefix"
    # Our members only from WHEELS (never a same-named package from an index); their
    # dependencies from the index. No compiler is needed: every dependency ships wheels.
    "$prefix/bin/python" -m pip install --quiet --no-cache-dir --only-binary=:all: \
        "$wheels"/clustercord_sdk-*.whl "$wheels"/clustercord-*.whl \
        "$wheels"/clustercord_builtins-*.whl
    "$prefix/bin/clustercord" --help >/dev/null
    ;;
*)
    echo "usage: install.sh wheels OUT | install WHEELS PREFIX" >&2
    exit 2
    ;;
esac
