#!/bin/sh
# Entrypoint of the one-shot `deploy` service of docker/compose.yml: deploy the
# contracts and register the founding departments, once.
#
#   deploy-once.sh govshare --home … consortium deploy --rpc URL --founders FILE \
#                  --threshold N --key-file FILE --out FILE
#
# `docker compose up` runs one-shot services again on every `up`: when the
# deployment volume already holds $GOVSHARE_DEPLOYMENT_FILE, the consortium exists
# and this exits 0 at once (the brokers that wait for this service then start).
# Otherwise it waits until the chain at $GOVSHARE_RPC produces blocks (a QBFT network
# needs more than two thirds of its validators connected) and runs its arguments.
#
# Environment: GOVSHARE_RPC, GOVSHARE_DEPLOYMENT_FILE, DEPLOY_WAIT_SECONDS (300).
set -eu

: "${GOVSHARE_RPC:?GOVSHARE_RPC names the chain node}"
: "${GOVSHARE_DEPLOYMENT_FILE:?GOVSHARE_DEPLOYMENT_FILE names the deployment file}"
[ "$#" -ge 1 ] || { echo "deploy-once: no command given" >&2; exit 2; }

if [ -s "$GOVSHARE_DEPLOYMENT_FILE" ]; then
  echo "deploy-once: $GOVSHARE_DEPLOYMENT_FILE exists: the consortium is already deployed."
  exit 0
fi

python - "$GOVSHARE_RPC" "${DEPLOY_WAIT_SECONDS:-300}" <<'EOF'
import json, sys, time, urllib.request

url, wait = sys.argv[1], float(sys.argv[2])
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []})
deadline = time.monotonic() + wait
said = False
while True:
    try:
        req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - our own node
            if int(json.load(resp)["result"], 16) >= 1:
                break
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if time.monotonic() >= deadline:
        sys.exit(f"deploy-once: {url} produced no block within {wait:g}s; are enough "
                 "validators up and connected (docker compose logs besu-…)?")
    if not said:
        print(f"deploy-once: waiting for {url} to produce blocks...", flush=True)
        said = True
    time.sleep(2)
EOF

exec "$@"
