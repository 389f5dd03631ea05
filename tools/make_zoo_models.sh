#!/usr/bin/env bash
# Rebuilds the small trained models in models/trained/ with edgemine's own commands, and records
# their reports in models/trained/REPORT.md. About two minutes on 2 cores.
#   bash tools/make_zoo_models.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=models/trained
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python - "$tmp/mnist_test.npz" <<'PY'
import sys, numpy as np
from edgemine import zoo
d = zoo.load_data("mnist")
np.savez(sys.argv[1], x_test=d.x_test, y_test=d.y_test)
PY
{
  echo "# Trained zoo models"
  echo
  echo "Made on $(date -u +%Y-%m-%d) by \`bash tools/make_zoo_models.sh\`, which runs exactly:"
  echo
  echo '```'
  echo "edgemine train seed_cnn --seed 0 --verbose 0 -o $out/seed_cnn.edgemine"
  echo "edgemine export $out/seed_cnn.edgemine -o $out/seed_cnn.onnx"
  echo "edgemine quantize $out/seed_cnn.onnx --int8 -o $out/seed_cnn_int8.onnx --eval MNIST_TEST.npz"
  echo '```'
  echo
  echo "(MNIST_TEST.npz: the bundled test split, 1,000 images, scaled to [0, 1].)"
  echo
  echo '```'
  edgemine train seed_cnn --seed 0 --verbose 0 -o "$out/seed_cnn.edgemine"
  edgemine export "$out/seed_cnn.edgemine" -o "$out/seed_cnn.onnx"
  edgemine quantize "$out/seed_cnn.onnx" --int8 -o "$out/seed_cnn_int8.onnx" --eval "$tmp/mnist_test.npz"
  echo '```'
} > "$tmp/report.md"
mv "$tmp/report.md" "$out/REPORT.md"
cat "$out/REPORT.md"
