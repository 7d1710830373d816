#!/usr/bin/env bash
# make demo / make demo-stop: a single-node kiln (kilnd dev) on a private
# containerd, serving the hello sample through the gateway.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${KILN_DEMO_DATA:-/var/lib/kiln/dev}          # where `kiln` looks for the token by default
RUN=${KILN_DEMO_RUN:-/run/kiln-demo}
LOGS=.demo
CTR_SOCK=$RUN/containerd.sock
REGISTRY=127.0.0.1:5000
IMAGE=$REGISTRY/samples/hello:latest
HOST=hello.default.example.com
GATEWAY=http://127.0.0.1:8080

say() { printf '==> %s\n' "$*"; }
die() { printf 'Error: %s\n' "$*" >&2; exit 1; }

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what did not come up within ${secs}s (logs in $LOGS/)"
}

start() {
  [ "$(id -u)" = 0 ] || die "the demo runs containers with containerd and CNI: run it as root"
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v curl >/dev/null || need+=(curl)
  command -v nft >/dev/null || need+=(nftables)
  if [ ${#need[@]} -gt 0 ]; then
    say "installing ${need[*]}"
    # A fresh machine may have empty package lists: refresh them first.
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  if [ -f $LOGS/kilnd.pid ] && kill -0 "$(cat $LOGS/kilnd.pid)" 2>/dev/null; then
    say "kiln is already running (make demo-stop to stop it); redeploying the sample"
  else
    mkdir -p $LOGS "$RUN" "$DATA"
    cat > "$RUN/containerd.toml" <<TOML
version = 2
root = "$DATA/containerd"
state = "$RUN/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTR_SOCK"
TOML
    say "starting a private containerd ($CTR_SOCK)"
    nohup containerd --config "$RUN/containerd.toml" >$LOGS/containerd.log 2>&1 &
    echo $! >$LOGS/containerd.pid
    wait_for 30 containerd test -S "$CTR_SOCK"

    say "starting kilnd dev (embedded etcd, all roles, local registry on $REGISTRY)"
    rm -f "$DATA/ready"
    nohup bin/kilnd dev --data-dir "$DATA" --containerd-address "$CTR_SOCK" \
      --registry-listen $REGISTRY --stop-on-exit >$LOGS/kilnd.log 2>&1 &
    echo $! >$LOGS/kilnd.pid
    wait_for 60 "kilnd dev" test -f "$DATA/ready"
  fi

  say "building the hello sample image and pushing it to $REGISTRY"
  go run ./deploy/samples/hello/publish --ref $IMAGE

  if bin/kiln service describe hello >/dev/null 2>&1; then
    bin/kiln service delete hello >/dev/null
  fi
  say "bin/kiln service create hello --image $IMAGE --env RESPONSE=\"Hello Serverless!\""
  bin/kiln service create hello --image $IMAGE --env RESPONSE="Hello Serverless!"

  say "curl -H 'Host: $HOST' $GATEWAY/"
  local out=""
  for ((i = 0; i < 50; i++)); do
    if out=$(curl -fsS -H "Host: $HOST" $GATEWAY/ 2>/dev/null); then break; fi
    sleep 0.1
  done
  [ -n "$out" ] || die "no reply through the gateway (logs in $LOGS/)"
  echo "$out"
  cat <<TXT

kiln is running (logs: $LOGS/kilnd.log). Try:
  bin/kiln service list
  bin/kiln service update hello --env RESPONSE=Bonjour
  curl -H 'Host: $HOST' $GATEWAY/
  bin/kiln revision list
make demo-stop stops kiln and removes the demo's containers and state.
TXT
}

stop() {
  if [ -f $LOGS/kilnd.pid ]; then
    local pid; pid=$(cat $LOGS/kilnd.pid)
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping kilnd (instances drain and stop)"
      kill -TERM "$pid"
      for ((i = 0; i < 300; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f $LOGS/kilnd.pid
  fi
  if [ -f $LOGS/containerd.pid ]; then
    local pid; pid=$(cat $LOGS/containerd.pid)
    if kill -0 "$pid" 2>/dev/null; then
      say "stopping the demo containerd"
      # Any task still alive belongs to the demo: kill its shims too.
      pkill -KILL -f "containerd-shim.*-address $CTR_SOCK" 2>/dev/null || true
      kill -TERM "$pid"
      for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f $LOGS/containerd.pid
  fi
  ip link del kiln0 2>/dev/null || true
  nft delete table inet kiln-kiln0 2>/dev/null || true
  for m in $(grep -o "$DATA/[^ ]*" /proc/mounts 2>/dev/null | sort -r); do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$DATA" "$RUN"
  say "demo stopped and cleaned up"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) die "usage: $0 start|stop" ;;
esac
