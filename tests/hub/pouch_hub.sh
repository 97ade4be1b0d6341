#!/bin/sh
# tests/hub/pouch_hub.sh: runs pouch_hub.js under harness.sh --server hub,
# with node trusting the hub's self-signed certificate.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export NODE_EXTRA_CA_CERTS="$FS_TEST_HUB_CA"
export NODE_PATH="$here/../interop/node_modules"
exec node "$here/pouch_hub.js"
