#!/bin/sh
# One-shot `prepare` service of docker/compose.yml: copy each organisation's
# generated secrets (docker/generated/, mounted read-only at /generated) into
# per-service named volumes, owned by the user the service's image runs as.
#
# Compose bind-mounts file secrets with the host file's owner and mode (its
# uid/gid/mode options are not honoured for file secrets), and the generated
# keys are 0600 for the operator who made them: the Besu and Kubo images (uid
# 1000) and the govshare image (uid 10001) could not read them. Secrets are
# never baked into an image; they live in docker/generated/ and in these volumes.
#
# A broker's secrets volume gets what `govshare serve` reads from
# GOVSHARE_SECRETS_DIR: the department's profile (config.json, broker.keystore.json,
# hpke.key.json, subject.key), broker.password and the Kubo token. The
# administrator's keystore and password stay with the operator (docker/generated/).
# The broker's data volume gets the profile's public config.json in
# depts/CODE/, where `govshare user …` looks for the department.
#
# Usage (inside the govshare image, as root): prepare-volumes.sh CODE...
# Environment (tests): GENERATED_DIR (/generated), VOLUMES_DIR (/vol).
set -eu

BESU_UID=1000
KUBO_UID=1000
GOVSHARE_UID=10001
G="${GENERATED_DIR:-/generated}"
V="${VOLUMES_DIR:-/vol}"
BROKER_FILES="config.json broker.keystore.json hpke.key.json subject.key broker.password"

die() { echo "prepare-volumes: $*" >&2; exit 1; }
need() { [ -f "$1" ] || die "missing $1 (run scripts/consortium_up.sh to generate it)"; }
# put SRC DEST UID [MODE]: a copy owned by UID, read-only unless MODE says otherwise.
put() { need "$1"; install -m "${4:-0400}" -o "$3" -g "$3" "$1" "$2"; }
own() { mkdir -p "$1"; chown "$2:$2" "$1"; chmod 0700 "$1"; }

[ "$#" -ge 1 ] || die "name at least one organisation"

# Check everything first: a half-filled set of volumes helps nobody.
need "$G/operator/deployer.key"
need "$G/kubo/swarm.key"
for code in "$@"; do
  org=$(echo "$code" | tr 'A-Z' 'a-z')
  dept=$(echo "$code" | tr 'a-z' 'A-Z')
  need "$G/besu/$org/key"
  need "$G/kubo/$org/kubo_identity.key"
  need "$G/kubo/$org/kubo_api_token"
  for f in $BROKER_FILES; do need "$G/depts/$dept/$f"; done
done

own "$V/operator-secrets" "$GOVSHARE_UID"
put "$G/operator/deployer.key" "$V/operator-secrets/deployer.key" "$GOVSHARE_UID"
own "$V/deployment" "$GOVSHARE_UID"
chmod 0755 "$V/deployment"

for code in "$@"; do
  org=$(echo "$code" | tr 'A-Z' 'a-z')
  dept=$(echo "$code" | tr 'a-z' 'A-Z')

  own "$V/besu-$org-data" "$BESU_UID"
  own "$V/besu-$org-secrets" "$BESU_UID"
  put "$G/besu/$org/key" "$V/besu-$org-secrets/key" "$BESU_UID"

  own "$V/kubo-$org-data" "$KUBO_UID"
  own "$V/kubo-$org-secrets" "$KUBO_UID"
  put "$G/kubo/swarm.key" "$V/kubo-$org-secrets/swarm.key" "$KUBO_UID"
  put "$G/kubo/$org/kubo_identity.key" "$V/kubo-$org-secrets/kubo_identity.key" "$KUBO_UID"
  put "$G/kubo/$org/kubo_api_token" "$V/kubo-$org-secrets/kubo_api_token" "$KUBO_UID"

  own "$V/broker-$org-data" "$GOVSHARE_UID"
  own "$V/broker-$org-data/depts" "$GOVSHARE_UID"
  own "$V/broker-$org-data/depts/$dept" "$GOVSHARE_UID"
  put "$G/depts/$dept/config.json" "$V/broker-$org-data/depts/$dept/config.json" \
    "$GOVSHARE_UID" 0444
  own "$V/broker-$org-secrets" "$GOVSHARE_UID"
  put "$G/kubo/$org/kubo_api_token" "$V/broker-$org-secrets/kubo_api_token" "$GOVSHARE_UID"
  for f in $BROKER_FILES; do
    put "$G/depts/$dept/$f" "$V/broker-$org-secrets/$f" "$GOVSHARE_UID"
  done
done
echo "prepare-volumes: secrets in place for: $*"
