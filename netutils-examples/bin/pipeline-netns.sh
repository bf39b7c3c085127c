#!/usr/bin/env bash
# Runs the split-model demo twice: once on loopback, once with every process in its own network namespace,
# joined through a switch (a bridge in one more namespace) by veth pairs shaped to RATE (default 1gbit) with
# the tbf qdisc in both directions -- each machine with one 1 Gbit/s port on a switch, as on a LAN.
# Creates the namespaces and links itself and removes them on exit. Needs root (ip netns, tc).
#
# usage: netutils-examples/bin/pipeline-netns.sh [--stages 3] [--tokens 32] [--serializer json] [--wire F32]
#                                                [--rate 1gbit] [--no-build]
set -euo pipefail

STAGES=3 TOKENS=32 SERIALIZER=json WIRE=F32 RATE=1gbit BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --stages) STAGES=$2; shift 2 ;;
    --tokens) TOKENS=$2; shift 2 ;;
    --serializer) SERIALIZER=$2; shift 2 ;;
    --wire) WIRE=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --no-build) BUILD=0; shift ;;
    *) echo "unknown option $1" >&2; sed -n '2,9p' "$0" >&2; exit 2 ;;
  esac
done
if [ "$(id -u)" != 0 ]; then
  echo "error: network namespaces and tc need root; run with sudo" >&2
  exit 1
fi
if [ "$STAGES" -lt 2 ]; then
  echo "error: --stages must be at least 2 (the head and one stage server)" >&2
  exit 2
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
JAVA="$JAVA_HOME/bin/java"
if [ "$BUILD" = 1 ]; then
  ./mvnw -q -ntp -DskipTests package -pl netutils-examples -am
fi
MP="$ROOT/netutils-examples/target/classes:$(cat "$ROOT/netutils-examples/target/runtime-module-path.txt")"
CKPT="$ROOT/netutils-examples/target/tiny-llama"
DEMO=(--tokens "$TOKENS" --serializer "$SERIALIZER" --wire "$WIRE" --checkpoint "$CKPT")

echo "=== loopback: $STAGES processes on 127.0.0.1 (writes the checkpoint on first run) ==="
"$JAVA" -p "$MP" -m netutils.examples/netutils.examples.InferenceDemo --stages "$STAGES" "${DEMO[@]}"

# Namespaces: nu-sw holds the bridge; node i (0 = head, 1..STAGES-1 = stage servers, STAGES = spare stage 1)
# lives in nu-n$i with address 10.77.0.(10+i).
PREFIX=nu$$
TMP=$(mktemp -d)
PIDS=()
NODES=$STAGES
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  for i in $(seq 0 "$NODES"); do ip netns del "$PREFIX-n$i" 2>/dev/null || true; done
  ip netns del "$PREFIX-sw" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

ip netns add "$PREFIX-sw"
ip -n "$PREFIX-sw" link add br0 type bridge
ip -n "$PREFIX-sw" link set br0 up
for i in $(seq 0 "$NODES"); do
  ns="$PREFIX-n$i"
  ip netns add "$ns"
  ip -n "$ns" link set lo up
  ip link add "${PREFIX}a$i" type veth peer name "${PREFIX}b$i"
  ip link set "${PREFIX}a$i" netns "$ns"
  ip link set "${PREFIX}b$i" netns "$PREFIX-sw"
  ip -n "$ns" link set "${PREFIX}a$i" name eth0
  ip -n "$ns" addr add "10.77.0.$((10 + i))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$PREFIX-sw" link set "${PREFIX}b$i" master br0
  ip -n "$PREFIX-sw" link set "${PREFIX}b$i" up
  # Both directions of the port are shaped: the node's sending side and the switch's side towards the node.
  tc -n "$ns" qdisc add dev eth0 root tbf rate "$RATE" burst 256kb latency 20ms
  tc -n "$PREFIX-sw" qdisc add dev "${PREFIX}b$i" root tbf rate "$RATE" burst 256kb latency 20ms
done

start_stage() { # node stage
  local node=$1 stage=$2
  ip netns exec "$PREFIX-n$node" "$JAVA" -XX:+UseSerialGC -p "$MP" -m netutils.examples/netutils.examples.InferenceStage \
    --checkpoint "$CKPT" --stage "$stage" --host "10.77.0.$((10 + node))" --port 5000 --serializer "$SERIALIZER" \
    >"$TMP/n$node.out" 2>"$TMP/n$node.err" &
  PIDS+=($!)
}
ADDRESSES=()
for i in $(seq 1 $((STAGES - 1))); do
  start_stage "$i" "$i/$STAGES"
  ADDRESSES+=("10.77.0.$((10 + i)):5000")
done
start_stage "$STAGES" "1/$STAGES"
SPARE="10.77.0.$((10 + STAGES)):5000"
for i in $(seq 1 "$STAGES"); do
  for _ in $(seq 1 300); do
    grep -q "listening on" "$TMP/n$i.out" 2>/dev/null && break
    sleep 0.1
  done
  if ! grep -q "listening on" "$TMP/n$i.out"; then
    echo "error: stage server in $PREFIX-n$i did not start:" >&2
    cat "$TMP/n$i.err" >&2
    exit 1
  fi
done

echo
echo "=== network namespaces: head in $PREFIX-n0 (10.77.0.10), stages on 10.77.0.11.., each port $RATE (tbf, both directions) ==="
cat "$TMP"/n*.out
STAGE_LIST=$(IFS=,; echo "${ADDRESSES[*]}")
ip netns exec "$PREFIX-n0" "$JAVA" -p "$MP" -m netutils.examples/netutils.examples.InferenceDemo \
  --stage-addresses "$STAGE_LIST" --spare "$SPARE" "${DEMO[@]}"
echo
echo "tbf on the head's port (proof the traffic went through the shaper):"
tc -s -n "$PREFIX-n0" qdisc show dev eth0 | sed 's/^/  /'
