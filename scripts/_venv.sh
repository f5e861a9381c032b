# Sourced by scripts/demo and scripts/test: create or refresh .venv so that it matches pyproject.toml.
# Usage: ensure_venv EXTRAS   (e.g. "test" or "")
ensure_venv() {
    local extras="$1" root py stamp want
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    py="${PYTHON:-python3}"
    if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "agent-tui needs Python 3.11 or newer; '$py' is $("$py" --version 2>&1)" >&2
        exit 2
    fi
    if [ ! -x "$root/.venv/bin/python" ]; then
        echo "Creating $root/.venv ..." >&2
        "$py" -m venv "$root/.venv" || {
            echo "python3 -m venv failed; on Debian: apt-get install python3-venv" >&2; exit 1; }
    fi
    stamp="$root/.venv/.agent-tui-installed"
    want="$(cat "$root/pyproject.toml" | sha256sum | cut -c1-16)-${extras}"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "Installing agent-tui${extras:+[$extras]} into .venv ..." >&2
        # pip's notes about unreachable extra index locations are noise here; real errors stay.
        local status
        set +e
        "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
            2>&1 | grep -v "^WARNING: Location" >&2
        "$root/.venv/bin/python" -m pip install -q --disable-pip-version-check \
            -e "$root${extras:+[$extras]}" 2>&1 | grep -v "^WARNING: Location" >&2
        status=${PIPESTATUS[0]}
        set -e
        if [ "$status" != 0 ]; then
            echo "pip install failed (exit $status); see the messages above" >&2
            exit 1
        fi
        echo "$want" > "$stamp"
    fi
}
