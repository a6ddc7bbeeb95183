#!/usr/bin/env bash
# Runs on a GPU machine (the device tool) from the repository root, with bin/
# carried from `make device-bins`: proves the static binary and the GPU paths.
set -uo pipefail
out=${OUT:-/tmp/dsbatch-out}
mkdir -p "$out"
rc=0
step() { echo; echo "== $*"; "$@" || { echo "FAILED ($?): $*"; rc=1; }; }
step nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
step ldd bin/dsbatch-static
step bin/dsbatch-static --version
step bin/dsbatch-static gpus
step bin/dsbatch-static gpus --json
echo; echo "== probe (exit 3 expected: testdata/media/bad holds broken files)"
bin/dsbatch-static probe --no-cache testdata/media; echo "exit $?"
step bin/dsbatch-static plan --no-cache --exclude 'bad/*' -o "$out/plan.json" testdata/media
(cd gpu && step ../bin/gpu.test -test.v -test.count=1)
(cd decode && step ../bin/decode.test -test.count=1)
# GPU and CPU workers frame for frame (issue 17): one table, non-zero on any
# difference. PARITY_DIR adds real recordings (raw streams, AVI) to the corpus.
(cd job && DSBATCH_PARITY_DIR=${PARITY_DIR:-} step ../bin/job.test -test.count=1 -test.v -test.run 'TestRunGPUMatchesCPUCorpus')
exit $rc
