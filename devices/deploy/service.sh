# `edgecnn deploy service=true`, step 3: install current/edgecnn.service as a systemd unit and start it.
# Filled in by edgecnn/deploy/install.py and run with bash over SSH.
set -euo pipefail
cd %{root}
sudo -n true 2>/dev/null || { echo "edgecnn: service=true needs passwordless sudo on the device" >&2; exit 6; }
ROOT="$(pwd)"
sed -e "s#@USER@#$(id -un)#g" -e "s#@ROOT@#$ROOT#g" current/edgecnn.service > edgecnn.service.partial
sudo -n install -m 644 edgecnn.service.partial /etc/systemd/system/edgecnn.service
rm -f edgecnn.service.partial
sudo -n systemctl daemon-reload
sudo -n systemctl enable edgecnn.service
sudo -n systemctl restart edgecnn.service
systemctl is-active edgecnn.service
