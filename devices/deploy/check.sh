# `edgecnn deploy`, step 1: the device has the profile's Python, can make venvs, and has room.
# Filled in by edgecnn/deploy/install.py and run with bash over SSH.
set -u
PY=$(command -v %{python_arg} || true)
[ -n "$PY" ] || { echo "edgecnn: the device has no %{python} (%{device} needs it): install it, e.g. sudo apt install %{python} %{python}-venv" >&2; exit 3; }
"$PY" -c 'import venv, ensurepip' 2>/dev/null || { echo "edgecnn: %{python} on the device cannot make venvs: sudo apt install %{python}-venv" >&2; exit 4; }
mkdir -p %{root} || exit 5
echo "free_mb=$(df -Pk %{root} | awk 'NR==2 {print int($4 / 1024)}')"
