#!/usr/bin/env bash
# Admit a new department to the running single-host consortium of docker/compose.yml.
#
#   scripts/consortium_up.sh --orgs TAX,MARKET,HEALTH,TRANSPORT,COURT --name COURT="Court"
#   docker/add-department.sh COURT [--as TAX] [--only STEP,...] [--wait 180]
#
# The first command generated COURT's validator key, Kubo node and profile (with the
# consortium's subject key) and started its containers; this one runs, through the
# `ops` service (on every validator's RPC network, the generated folder as its home):
#
#   admit       govshare dept propose add COURT --from depts/COURT/public.json --as TAX,
#               then `govshare dept approve` by the other members until the threshold
#               is met (each signs with its own administrator key)
#   allowlists  govshare consortium allowlists --rpc … (the registry's accounts, every
#               validator in nodes.json, the deployer)
#   reload      govshare consortium reload-allowlists (perm_reloadPermissionsFromFile
#               on every validator)
#   vote        govshare consortium vote-validator ADDRESS: qbft_proposeValidatorVote on
#               every current validator, wait for the set to change, discard the votes
#   peering     restart the other Kubo nodes so that they peer with COURT's
#
# It acts for every member's administrator: it is for a single host where the
# operator holds all the generated keys. Across organisations each administrator
# runs their own step (docs/consortium.md, "Add a fifth department").
#
# Environment: GOVSHARE_GENERATED_DIR (docker/generated). For tests: GOVSHARE_OPS (the
# command that runs a command "in ops"), GOVSHARE_OPS_GENERATED (the generated folder
# as ops sees it), GOVSHARE_OPS_RPC (one RPC URL standing for every validator).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEN="${GOVSHARE_GENERATED_DIR:-$ROOT/docker/generated}"
STEPS="admit,allowlists,reload,vote,peering"
AS=""
WAIT=180
CODE=""

die() { echo "add-department: $1" >&2; exit "${2:-1}"; }
say() { echo "add-department: $*"; }

while [ "$#" -gt 0 ]; do
  case "$1" in
    --as) AS="${2:?--as needs a department code}"; shift 2 ;;
    --only) STEPS="${2:?--only needs steps}"; shift 2 ;;
    --wait) WAIT="${2:?--wait needs seconds}"; shift 2 ;;
    -h|--help) sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1 (see --help)" 2 ;;
    *) [ -z "$CODE" ] || die "one department at a time" 2; CODE="$1"; shift ;;
  esac
done
[ -n "$CODE" ] || die "name the new department's code (see --help)" 2
CODE="$(echo "$CODE" | tr '[:lower:]' '[:upper:]')"
AS="$(echo "$AS" | tr '[:lower:]' '[:upper:]')"
for step in ${STEPS//,/ }; do
  case "$step" in admit|allowlists|reload|vote|peering) ;; *) die "unknown step $step" 2 ;; esac
done
step() { [[ ",$STEPS," == *",$1,"* ]]; }

if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
# json_get EXPR: evaluate a Python expression on the JSON document `d` read from stdin.
json_get() { "$PY" -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

[ -f "$GEN/depts/$CODE/public.json" ] && [ -f "$GEN/besu/${CODE,,}/key" ] \
  || die "$CODE has not been generated: run scripts/consortium_up.sh --orgs …,$CODE first"

if [ -n "${GOVSHARE_OPS:-}" ]; then
  read -r -a OPS <<<"$GOVSHARE_OPS"
  COMPOSE=()
else
  if [ -f "$GEN/compose.yml" ]; then COMPOSE_FILE="$GEN/compose.yml"; else COMPOSE_FILE="$ROOT/docker/compose.yml"; fi
  COMPOSE=(docker compose -f "$COMPOSE_FILE" --env-file "$GEN/.env")
  OPS=("${COMPOSE[@]}" run --rm -T ops)
fi
G="${GOVSHARE_OPS_GENERATED:-/generated}"
rpc_of() { if [ -n "${GOVSHARE_OPS_RPC:-}" ]; then echo "$GOVSHARE_OPS_RPC"; else echo "http://besu-${1,,}:8545"; fi; }

# The validators in nodes.json (name and address), the newcomer's among them.
mapfile -t NODES < <(json_get '"\n".join(n["name"] + " " + n["address"] for n in d["nodes"])' <"$GEN/nodes.json")
NEW_ADDRESS=""
OLD_VALIDATORS=()
for line in "${NODES[@]}"; do
  name="${line%% *}"
  if [ "$name" = "$CODE" ]; then NEW_ADDRESS="${line#* }"; else OLD_VALIDATORS+=("$name"); fi
done
[ -n "$NEW_ADDRESS" ] || die "$CODE is not in $GEN/nodes.json"
FIRST="${OLD_VALIDATORS[0]}"

# ops_as DEPT ARGS…: a govshare command in ops, unlocking DEPT's administrator key.
ops_as() {
  local dept="$1"; shift
  "${OPS[@]}" env "GOVSHARE_PASSWORD_FILE=$G/depts/$dept/admin.password" "$@"
}

if step admit; then
  listing="$("${OPS[@]}" govshare dept list --rpc "$(rpc_of "$FIRST")" --json)"
  status="$(json_get "next((x['status'] for x in d['departments'] if x['code'] == '$CODE'), 'none')" <<<"$listing")"
  if [ "$status" = "active" ]; then
    say "$CODE is already an active member"
  else
    mapfile -t MEMBERS < <(json_get "'\n'.join(x['code'] for x in d['departments'] if x['status'] == 'active')" <<<"$listing")
    [ -n "$AS" ] || AS="${MEMBERS[0]}"
    [ -f "$GEN/depts/$AS/admin.password" ] || die "no administrator key for $AS in $GEN/depts"
    proposals="$("${OPS[@]}" govshare dept proposals --rpc "$(rpc_of "$FIRST")" --json)"
    pid="$(json_get "next((str(p['id']) for p in d['proposals'] if p['kind'] == 'add-department' and p.get('target_department') == '$CODE'), '')" <<<"$proposals")"
    if [ -n "$pid" ]; then
      say "continuing the open proposal #$pid to add $CODE"
      approved="$(json_get "' '.join(next(p['approved_by'] for p in d['proposals'] if str(p['id']) == '$pid'))" <<<"$proposals")"
      result="$(json_get "next(p['status'] for p in d['proposals'] if str(p['id']) == '$pid')" <<<"$proposals")"
    else
      say "$AS proposes adding $CODE"
      out="$(ops_as "$AS" govshare dept propose add "$CODE" --from "$G/depts/$CODE/public.json" \
        --as "$AS" --rpc "$(rpc_of "$FIRST")" -y --json)"
      pid="$(json_get "d['id']" <<<"$out")"
      result="$(json_get "d['status']" <<<"$out")"
      approved="$AS"
    fi
    for member in "${MEMBERS[@]}"; do
      [ "$result" != "executed" ] || break
      [[ " $approved " == *" $member "* ]] && continue
      [ -f "$GEN/depts/$member/admin.password" ] || { say "skipping $member (no key here)"; continue; }
      say "$member approves proposal #$pid"
      out="$(ops_as "$member" govshare dept approve "$pid" --as "$member" --rpc "$(rpc_of "$FIRST")" -y --json)"
      result="$(json_get "d['status']" <<<"$out")"
    done
    [ "$result" = "executed" ] \
      || die "proposal #$pid is $result: not enough administrators here approved it"
    say "$CODE is a member (proposal #$pid executed)"
  fi
fi

if step allowlists; then
  deployer="$(tr -d '[:space:]' <"$GEN/operator/deployer.address")"
  "${OPS[@]}" govshare consortium allowlists --rpc "$(rpc_of "$FIRST")" \
    --deployment "$G/deployment.json" --nodes "$G/nodes.json" --account "$deployer" \
    --out "$G/permissions/permissions_config.toml"
fi

ALL_RPCS=()
OLD_RPCS=()
for name in "${OLD_VALIDATORS[@]}"; do OLD_RPCS+=(--rpc "$(rpc_of "$name")"); done
ALL_RPCS=("${OLD_RPCS[@]}" --rpc "$(rpc_of "$CODE")")

if step reload; then
  "${OPS[@]}" govshare consortium reload-allowlists "${ALL_RPCS[@]}"
fi

if step vote; then
  say "voting $CODE's validator $NEW_ADDRESS in"
  "${OPS[@]}" govshare consortium vote-validator "$NEW_ADDRESS" "${OLD_RPCS[@]}" --wait "$WAIT"
fi

if step peering && [ "${#COMPOSE[@]}" -gt 0 ]; then
  for name in "${OLD_VALIDATORS[@]}"; do
    say "restarting kubo-${name,,} (it now peers with kubo-${CODE,,})"
    "${COMPOSE[@]}" restart "kubo-${name,,}"
  done
fi

say "done. $CODE's first users:"
if [ "${#COMPOSE[@]}" -gt 0 ]; then
  echo "  ${COMPOSE[*]} exec broker-${CODE,,} govshare user add NAME --role clerk --dept $CODE"
fi
