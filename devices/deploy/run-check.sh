# `edgecnn check-device`: run an installed bundle on the check's images and video, printing each
# output after an `@@name` line (edgecnn/deploy/check.py reads them). Filled in by check.py and run
# with bash in the arm64 root, on this host, or over SSH on a device, after `deploy` installed it.
set -euo pipefail
cd %{root}
rm -rf check && mkdir check && tar -xzf check.tar.gz -C check && rm -f check.tar.gz
cd %{name}
echo "@@machine"
.venv/bin/python -c 'import platform; print(platform.machine(), "Python", platform.python_version())'
echo "@@packages"
.venv/bin/python -m pip list --format=freeze 2>/dev/null | grep -i -E '^(numpy|scipy|opencv|ai.edge.litert|tflite|onnxruntime)' || true
echo "@@detections"
PYTHONPATH=. .venv/bin/python -m edgecnn.runtime.detect_images config=config.json images=../check/images.txt \
  conf=%{conf} iou=%{iou} max_det=%{max_det}
echo "@@frames"
.venv/bin/python -c 'import cv2, hashlib, sys
capture, limit = cv2.VideoCapture(sys.argv[1]), int(sys.argv[2]) or 1 << 30
while limit:
    ok, frame = capture.read()
    if not ok:
        break
    print(hashlib.sha256(frame.tobytes()).hexdigest()[:16])
    limit -= 1' ../check/%{video} %{frames}
echo "@@app"
./run.sh source=../check/%{video} mot=../check/tracks.txt max_frames=%{frames} log_every=0 --json
echo "@@tracks"
cat ../check/tracks.txt
