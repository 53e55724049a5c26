# `edgecnn deploy`, step 2: unpack the copied bundle, make or reuse its venv, load its models once,
# then make it `current`. Filled in by edgecnn/deploy/install.py and run with bash over SSH.
set -euo pipefail
cd %{root}
rm -rf %{name}.partial && mkdir %{name}.partial
tar -xzf %{name}.tar.gz -C %{name}.partial --strip-components=1
if [ ! -x %{venv}/bin/python ]; then $(command -v %{python_arg}) -m venv %{site}%{venv}; fi
%{venv}/bin/python -m pip install --disable-pip-version-check -q -r %{name}.partial/requirements.txt
ln -sfn "$(cd %{venv} && pwd)" %{name}.partial/.venv
(cd %{name}.partial && PYTHONPATH=. .venv/bin/python -c 'import json
from edgecnn.runtime.backends import load_backend
config = json.load(open("config.json"))
for key in ("model", "reid"):
    if config.get(key):
        print("loaded", load_backend(config[key]))')
rm -rf %{name} && mv %{name}.partial %{name}
ln -sfn %{name} current.partial && mv -Tf current.partial current
rm -f %{name}.tar.gz
