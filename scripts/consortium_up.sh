#!/usr/bin/env bash
# Generate a govshare consortium into docker/generated/ and start it with Docker Compose.
#
#   scripts/consortium_up.sh [--orgs TAX,MARKET,HEALTH,TRANSPORT] [--name CODE=NAME]...
#                            [--threshold N] [--chain-id 20250] [--block-period 2]
#                            [--endpoint-pattern http://broker-{org}:8443]
#                            [--generate-only] [--force]
#
# Generates, without Docker: the QBFT genesis and validator keys, the operator's
# deployer key, the private Kubo swarm (swarm key, identities, API tokens), the
# consortium subject key, each department's profile (`govshare init`, with generated
# broker and administrator passwords), founders.json (the departments' public
# entries), the founders' allowlist and the compose .env (threshold: a majority
# unless --threshold). Secrets are 0600 in a 0700 directory. Then, unless
# --generate-only, `docker compose up -d --build`.
#
# Running it again reuses every key and profile. A code new to --orgs is added to
# the existing network (its validator, Kubo node and profile; see docker/add-department.sh
# for its admission). --force makes a new network (new chain and swarm keys, and with
# Docker it first removes the old stack's volumes); department profiles are kept.
#
# Environment: GOVSHARE (the govshare command), GOVSHARE_GENERATED_DIR (output
# directory, default docker/generated; with --generate-only only),
# GOVSHARE_SCRYPT_N (keystore cost; tests only).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DOCKER_DIR="$ROOT/docker"
DEFAULT_ORGS="TAX,MARKET,HEALTH,TRANSPORT"
ORGS="$DEFAULT_ORGS"
CHAIN_ID=20250
BLOCK_PERIOD=2
THRESHOLD=""
ENDPOINT_PATTERN="http://broker-{org}:8443"
GENERATE_ONLY=0
FORCE=0
declare -A NAMES=()

die() { echo "consortium_up: $1" >&2; exit "${2:-1}"; }
say() { echo "consortium_up: $*"; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --orgs) ORGS="${2:?--orgs needs a value}"; shift 2 ;;
    --name)
      pair="${2:?--name needs CODE=NAME}"
      [[ "$pair" == *=?* ]] || die "--name wants CODE=NAME, got '$pair'" 2
      NAMES["${pair%%=*}"]="${pair#*=}"; shift 2 ;;
    --threshold) THRESHOLD="${2:?--threshold needs a value}"; shift 2 ;;
    --chain-id) CHAIN_ID="${2:?--chain-id needs a value}"; shift 2 ;;
    --block-period) BLOCK_PERIOD="${2:?--block-period needs a value}"; shift 2 ;;
    --endpoint-pattern) ENDPOINT_PATTERN="${2:?--endpoint-pattern needs a value}"; shift 2 ;;
    --generate-only) GENERATE_ONLY=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" 2 ;;
  esac
done

GEN="$DOCKER_DIR/generated"
if [ "$GENERATE_ONLY" = 1 ] && [ -n "${GOVSHARE_GENERATED_DIR:-}" ]; then
  GEN="$GOVSHARE_GENERATED_DIR"
fi

# Fail before generating anything if the stack could not be started here.
if [ "$GENERATE_ONLY" = 0 ]; then
  command -v docker >/dev/null 2>&1 \
    || die "Docker is not installed here. Install Docker Engine with the compose plugin, or run with --generate-only to only write docker/generated/." 3
  docker compose version >/dev/null 2>&1 \
    || die "'docker compose' (the Compose v2 plugin) is not available. Install it, or run with --generate-only." 3
  docker info >/dev/null 2>&1 \
    || die "The Docker engine is not reachable (is the daemon running, may this user use it?)." 3
fi

# The govshare command and a Python with govshare installed (for small JSON chores).
if [ -n "${GOVSHARE:-}" ]; then
  read -r -a GS <<<"$GOVSHARE"
elif [ -x "$ROOT/.venv/bin/govshare" ]; then
  GS=("$ROOT/.venv/bin/govshare")
elif command -v govshare >/dev/null 2>&1; then
  GS=(govshare)
else
  GS=(python3 -m govshare.cli.main)
fi
if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi

# Organisation codes: department codes (govshare init) that are also compose names.
IFS=',' read -r -a RAW_ORGS <<<"$ORGS"
ORG_LIST=()
for o in "${RAW_ORGS[@]}"; do
  o="$(echo "$o" | tr -d '[:space:]' | tr '[:lower:]' '[:upper:]')"
  [ -n "$o" ] || continue
  [[ "$o" =~ ^[A-Z][A-Z0-9]{1,15}$ ]] \
    || die "organisation code '$o': use 2-16 letters or digits, starting with a letter" 2
  for seen in "${ORG_LIST[@]+"${ORG_LIST[@]}"}"; do
    [ "$seen" != "$o" ] || die "organisation $o is listed twice" 2
  done
  ORG_LIST+=("$o")
done
N="${#ORG_LIST[@]}"
[ "$N" -ge 1 ] || die "--orgs is empty" 2
ORGS="$(IFS=,; echo "${ORG_LIST[*]}")"
[ "$N" -ge 4 ] || echo "consortium_up: warning: $N organisation(s); QBFT needs 4 to tolerate a faulty validator." >&2
for code in "${!NAMES[@]}"; do
  [[ ",$ORGS," == *",${code^^},"* ]] || die "--name $code: $code is not in --orgs" 2
  NAMES["${code^^}"]="${NAMES[$code]}"
done
if [ -z "$THRESHOLD" ]; then
  THRESHOLD=$((N / 2 + 1))  # a majority of the founders
fi
[[ "$THRESHOLD" =~ ^[0-9]+$ ]] && [ "$THRESHOLD" -ge 1 ] && [ "$THRESHOLD" -le "$N" ] \
  || die "--threshold must be between 1 and the number of organisations ($N)" 2

if [ "$ORGS" = "$DEFAULT_ORGS" ]; then
  COMPOSE_FILE="$DOCKER_DIR/compose.yml"
else
  COMPOSE_FILE="$GEN/compose.yml"  # generated below
fi
compose() { docker compose -f "$COMPOSE_FILE" --env-file "$GEN/.env" "$@"; }

mkdir -p "$GEN"
chmod 0700 "$GEN"

if [ "$FORCE" = 1 ] && [ -f "$GEN/genesis.json" ]; then
  if [ "$GENERATE_ONLY" = 0 ] && [ -f "$COMPOSE_FILE" ] && [ -f "$GEN/.env" ]; then
    say "--force: removing the old stack and its volumes (chain, IPFS and broker data)"
    compose --profile ops down --volumes --remove-orphans
  fi
  rm -f "$GEN/deployment.json"
fi

# 1. The chain: genesis and validator keys; codes new to --orgs join the network.
FRESH=0
ADDED=()
if [ -f "$GEN/genesis.json" ] && [ "$FORCE" = 0 ]; then
  say "reusing the network in $GEN (pass --force to make a new one)"
  [ -f "$GEN/kubo/swarm.key" ] || die "$GEN has a genesis but no kubo/swarm.key; use --force"
  for org in "${ORG_LIST[@]}"; do
    if [ ! -f "$GEN/besu/${org,,}/key" ]; then
      say "adding $org's validator and Kubo node to the network"
      "${GS[@]}" consortium add-node --name "$org" --out "$GEN"
      ADDED+=("$org")
    fi
  done
else
  FORCE_ARG=()
  [ "$FORCE" = 0 ] || FORCE_ARG=(--force)
  "${GS[@]}" consortium genesis --validators "$N" --names "$ORGS" --chain-id "$CHAIN_ID" \
    --block-period "$BLOCK_PERIOD" --out "$GEN" "${FORCE_ARG[@]+"${FORCE_ARG[@]}"}"
  "${GS[@]}" consortium kubo --names "$ORGS" --out "$GEN" --force
  FRESH=1
fi

# 2. The consortium subject key (HMAC key of subject references), one for all members.
# new_secret FILE EXPR: write Python's EXPR (module secrets) to FILE, 0600 from the start.
new_secret() { (umask 077; "$PY" -c "import secrets; print($2)" >"$1"); chmod 0600 "$1"; }
[ -s "$GEN/subject.key" ] || new_secret "$GEN/subject.key" 'secrets.token_hex(32)'


# 3. Department profiles: `govshare init` with generated passwords, in GEN as home.
INIT_EXTRA=()
[ -z "${GOVSHARE_SCRYPT_N:-}" ] || INIT_EXTRA=(--scrypt-n "$GOVSHARE_SCRYPT_N")
for org in "${ORG_LIST[@]}"; do
  d="$GEN/depts/$org"
  if [ -f "$d/config.json" ]; then
    cmp -s <(tr -d '[:space:]' <"$d/subject.key") <(tr -d '[:space:]' <"$GEN/subject.key") \
      || die "$d/subject.key differs from $GEN/subject.key: every member must share one key"
  else
    mkdir -p "$d"
    chmod 0700 "$d"
    [ -s "$d/broker.password" ] || new_secret "$d/broker.password" 'secrets.token_urlsafe(32)'
    [ -s "$d/admin.password" ] || new_secret "$d/admin.password" 'secrets.token_urlsafe(32)'
    endpoint="${ENDPOINT_PATTERN//\{org\}/${org,,}}"
    endpoint="${endpoint//\{ORG\}/$org}"
    say "creating department $org (endpoint $endpoint)"
    GOVSHARE_ADMIN_PASSWORD="$(cat "$d/admin.password")" \
      GOVSHARE_SUBJECT_KEY_FILE="$GEN/subject.key" GOVSHARE_SUBJECT_KEY="" \
      "${GS[@]}" --home "$GEN" init "$org" --name "${NAMES[$org]:-$org}" \
        --endpoint "$endpoint" --password-file "$d/broker.password" --json \
        "${INIT_EXTRA[@]+"${INIT_EXTRA[@]}"}" >"$d/init.json.part"
    mv "$d/init.json.part" "$d/init.json"
  fi
  # Its public entry (what `govshare init --json` printed, without the local details):
  # the founders file entry, and `govshare dept propose add --from` for a newcomer.
  "$PY" - "$d" <<'EOF'
import json, os, sys
d = sys.argv[1]
keys = ("code", "name", "endpoint", "broker", "admins", "hpke_public_key")
init, public = os.path.join(d, "init.json"), os.path.join(d, "public.json")
if os.path.exists(init):
    with open(init) as fh:
        printed = json.load(fh)
    entry = {k: printed[k] for k in keys}
elif os.path.exists(public):
    sys.exit(0)
else:  # a profile made elsewhere: the same entry from its config.json
    with open(os.path.join(d, "config.json")) as fh:
        c = json.load(fh)
    entry = {"code": c["code"], "name": c["name"], "endpoint": c["endpoint"],
             "broker": c["broker_address"], "admins": [c["admin_address"]],
             "hpke_public_key": "0x" + c["hpke_public_key"]}
with open(public + ".part", "w") as fh:
    json.dump(entry, fh, indent=2)
    fh.write("\n")
os.chmod(public + ".part", 0o644)
os.replace(public + ".part", public)
if os.path.exists(init):
    os.remove(init)
EOF
done

# 4. founders.json: the founding departments' public entries, for the deploy service.
"$PY" - "$GEN" "${ORG_LIST[@]}" >"$GEN/founders.json" <<'EOF'
import json, sys
gen, codes = sys.argv[1], sys.argv[2:]
print(json.dumps([json.load(open(f"{gen}/depts/{c}/public.json")) for c in codes], indent=2))
EOF
chmod 0644 "$GEN/founders.json"

# 5. The founders' allowlist, until the consortium is deployed: afterwards the chain
#    decides (`govshare consortium allowlists --rpc`, docker/add-department.sh).
if [ "$FRESH" = 1 ] || [ ! -f "$GEN/deployment.json" ]; then
  ACCOUNTS=(--account "$(tr -d '[:space:]' <"$GEN/operator/deployer.address")")
  while read -r acct; do ACCOUNTS+=(--account "$acct"); done < <("$PY" - "$GEN/founders.json" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1])):
    for a in [e["broker"], *e["admins"]]:
        print(a)
EOF
)
  "${GS[@]}" consortium allowlists --nodes "$GEN/nodes.json" "${ACCOUNTS[@]}" \
    --out "$GEN/permissions/permissions_config.toml"
fi

# Directories the containers mount must be readable by their users (the files in
# them are 0644/0755 already), whatever this shell's umask.
chmod 0755 "$GEN/permissions" "$GEN"/kubo/*/container-init.d

# 6. The compose file (the committed one for the default four) and its .env.
if [ "$COMPOSE_FILE" != "$DOCKER_DIR/compose.yml" ]; then
  # Paths in a compose file are relative to its directory: here, the generated one.
  REL_DOCKER="$("$PY" -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$DOCKER_DIR" "$GEN")"
  "${GS[@]}" consortium compose --orgs "$ORGS" --docker-dir "$REL_DOCKER" --generated-dir . \
    --out "$COMPOSE_FILE"
fi
{
  echo "# Generated by scripts/consortium_up.sh"
  echo "GOVSHARE_CHAIN_ID=$CHAIN_ID"
  echo "GOVSHARE_THRESHOLD=$THRESHOLD"
  echo "OPERATOR_UID=$(id -u)"
  echo "OPERATOR_GID=$(id -g)"
  echo "BROKER_BIND=127.0.0.1"
  i=0
  for org in "${ORG_LIST[@]}"; do
    echo "BROKER_PORT_${org}=$((8443 + i))"
    i=$((i + 1))
  done
} >"$GEN/.env"
chmod 0600 "$GEN/.env"

# admission_hint: what a department added to a running network still needs.
admission_hint() {
  for org in "${ADDED[@]+"${ADDED[@]}"}"; do
    echo "$org joined the network's files; admit it (on chain, allowlists, validator vote):"
    echo "  docker/add-department.sh $org"
  done
}

if [ "$GENERATE_ONLY" = 1 ]; then
  say "generated $GEN (threshold $THRESHOLD of $N); start it with:"
  echo "  docker compose -f $COMPOSE_FILE --env-file $GEN/.env up -d --build"
  admission_hint
  exit 0
fi

compose up -d --build
# The admins' home (GEN) gets the deployment file; `ops` copies it out of its volume.
compose run --rm -T ops true
compose ps
FIRST="${ORG_LIST[0]}"
cat <<EOF

The consortium is up: ${ORGS//,/, } (approval threshold $THRESHOLD).
Brokers listen on 127.0.0.1:8443 and up (BROKER_PORT_<CODE> in $GEN/.env).
Create each department's first users (the token is printed once):
  docker compose -f $COMPOSE_FILE --env-file $GEN/.env exec broker-${FIRST,,} \\
    govshare user add alice --role clerk --dept $FIRST
Administrators act with the ops tool, e.g.:
  docker compose -f $COMPOSE_FILE --env-file $GEN/.env run --rm ops govshare dept list
EOF
admission_hint
