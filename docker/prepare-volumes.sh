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
# Usage (inside the govshare image, as root): prepare-volumes.sh ORG...
set -eu

BESU_UID=1000
KUBO_UID=1000
GOVSHARE_UID=10001
G=/generated

die() { echo "prepare-volumes: $*" >&2; exit 1; }
need() { [ -f "$1" ] || die "missing $1 (run scripts/consortium_up.sh to generate it)"; }
# put SRC DEST UID: a read-only copy owned by UID.
put() { need "$1"; install -m 0400 -o "$3" -g "$3" "$1" "$2"; }
own() { chown "$2:$2" "$1"; chmod 0700 "$1"; }

[ "$#" -ge 1 ] || die "name at least one organisation"

need "$G/operator/deployer.key"
own /vol/operator-secrets "$GOVSHARE_UID"
put "$G/operator/deployer.key" /vol/operator-secrets/deployer.key "$GOVSHARE_UID"
own /vol/deployment "$GOVSHARE_UID"
chmod 0755 /vol/deployment

for org in "$@"; do
  own "/vol/besu-$org-data" "$BESU_UID"
  own "/vol/besu-$org-secrets" "$BESU_UID"
  put "$G/besu/$org/key" "/vol/besu-$org-secrets/key" "$BESU_UID"

  own "/vol/kubo-$org-data" "$KUBO_UID"
  own "/vol/kubo-$org-secrets" "$KUBO_UID"
  put "$G/kubo/swarm.key" "/vol/kubo-$org-secrets/swarm.key" "$KUBO_UID"
  put "$G/kubo/$org/kubo_identity.key" "/vol/kubo-$org-secrets/kubo_identity.key" "$KUBO_UID"
  put "$G/kubo/$org/kubo_api_token" "/vol/kubo-$org-secrets/kubo_api_token" "$KUBO_UID"

  own "/vol/broker-$org-data" "$GOVSHARE_UID"
  own "/vol/broker-$org-secrets" "$GOVSHARE_UID"
  put "$G/kubo/$org/kubo_api_token" "/vol/broker-$org-secrets/kubo_api_token" "$GOVSHARE_UID"
  # The department's own keystores and TLS material, when the operator has put them
  # in docker/generated/depts/<org>/ (made with the govshare CLI; see docs/consortium.md).
  if [ -d "$G/depts/$org" ]; then
    cp -R "$G/depts/$org/." "/vol/broker-$org-secrets/"
    chown -R "$GOVSHARE_UID:$GOVSHARE_UID" "/vol/broker-$org-secrets"
    find "/vol/broker-$org-secrets" -type f -exec chmod 0400 {} +
    find "/vol/broker-$org-secrets" -type d -exec chmod 0700 {} +
  fi
done
echo "prepare-volumes: secrets in place for: $*"
