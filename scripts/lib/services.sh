# shellcheck shell=bash
# Shared helpers of scripts/demo, scripts/test and scripts/bench: install and start private
# RabbitMQ and PostgreSQL servers on loopback, with their data under target/services.
# Source this file; every function is idempotent.

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SERVICES_DIR=${SERVICES_DIR:-$ROOT/target/services}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $*"
    fi
}

APT_UPDATED=
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    if [ -z "$APT_UPDATED" ]; then
        as_root apt-get update -qq >&2 || die "apt-get update failed"
        APT_UPDATED=1
    fi
    # Debian's rabbitmq-server postinst tries to start a system service; there is none here.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 \
        || die "could not install ${missing[*]}"
}

ensure_build_deps() {
    apt_install libsqlite3-dev libpq-dev pkg-config
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_rabbitmq NAME [PORT]: starts (or reuses) a private node NAME@localhost on PORT (default:
# a free one). Exports AMQP_ADDR, RABBITMQ_NODE (for rabbitmqctl -n) and RABBITMQ_PORT.
start_rabbitmq() {
    local name=${1:-cqrs}
    apt_install rabbitmq-server
    local dir=$SERVICES_DIR/rabbitmq-$name
    local node="$name@localhost"
    mkdir -p "$dir"
    as_root chown -R rabbitmq:rabbitmq "$dir"
    local port_file=$dir/port
    if [ -f "$port_file" ] && rabbitmqctl -q -n "$node" status >/dev/null 2>&1; then
        RABBITMQ_PORT=$(cat "$port_file")
        log "reusing RabbitMQ node $node on port $RABBITMQ_PORT"
    else
        # a stale node of an earlier run (killed by Ctrl-C or a crash) holds its ports
        timeout 30 rabbitmqctl -q -n "$node" stop >/dev/null 2>&1 || true
        kill_by_pid_file "$dir/pid"
        RABBITMQ_PORT=${2:-$(free_port)}
        local dist_port
        dist_port=$(free_port)
        echo "$RABBITMQ_PORT" | as_root tee "$port_file" >/dev/null
        : > "$dir/enabled_plugins.tmp" && echo '[].' > "$dir/enabled_plugins.tmp"
        as_root install -o rabbitmq -g rabbitmq -m 644 "$dir/enabled_plugins.tmp" "$dir/enabled_plugins"
        rm -f "$dir/enabled_plugins.tmp"
        log "starting RabbitMQ node $node on 127.0.0.1:$RABBITMQ_PORT (data in $dir)"
        (
            cd /tmp && env \
                RABBITMQ_MNESIA_BASE="$dir/mnesia" \
                RABBITMQ_LOG_BASE="$dir/log" \
                RABBITMQ_NODENAME="$node" \
                RABBITMQ_NODE_PORT="$RABBITMQ_PORT" \
                RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
                RABBITMQ_DIST_PORT="$dist_port" \
                RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
                RABBITMQ_PID_FILE="$dir/pid" \
                RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="+sbwt none +sbwtdcpu none +sbwtdio none" \
                setsid rabbitmq-server >"$dir/server.out" 2>&1 </dev/null &
        )
        local i
        for i in $(seq 1 60); do
            if rabbitmqctl -q -n "$node" await_startup --timeout 5 >/dev/null 2>&1; then
                break
            fi
            sleep 1
            [ "$i" = 60 ] && { tail -30 "$dir/server.out" "$dir"/log/*.log >&2 2>/dev/null; die "RabbitMQ did not start"; }
        done
    fi
    export RABBITMQ_NODE=$node RABBITMQ_PORT
    export AMQP_ADDR="amqp://guest:guest@127.0.0.1:$RABBITMQ_PORT/%2f"
}

stop_rabbitmq() {
    local name=${1:-cqrs}
    local node="$name@localhost"
    if timeout 30 rabbitmqctl -q -n "$node" stop >/dev/null 2>&1; then
        log "stopped RabbitMQ node $node"
    fi
    kill_by_pid_file "$SERVICES_DIR/rabbitmq-$name/pid"
}

# start_rabbitmq_cluster NAME: a 3-node RabbitMQ cluster on loopback, nodes NAME-1@localhost,
# NAME-2@localhost and NAME-3@localhost (each a private node as start_rabbitmq starts it, all
# sharing this user's Erlang cookie); the 2nd and 3rd join the 1st. A node restarted later with
# start_rabbitmq NAME-i PORT rejoins by itself (its data dir remembers the cluster).
# Exports CLUSTER_AMQP_ADDRS (the three URLs, comma-separated) and CLUSTER_NODES.
start_rabbitmq_cluster() {
    local name=$1 i node urls=() nodes=()
    for i in 1 2 3; do
        start_rabbitmq "$name-$i"
        urls+=("$AMQP_ADDR")
        nodes+=("$name-$i@localhost")
    done
    for i in 2 3; do
        node="$name-$i@localhost"
        if ! rabbitmqctl -q -n "$node" cluster_status 2>/dev/null | grep -q "$name-1@localhost"; then
            log "joining $node to $name-1@localhost"
            rabbitmqctl -q -n "$node" stop_app >/dev/null 2>&1
            rabbitmqctl -q -n "$node" reset >/dev/null 2>&1
            rabbitmqctl -q -n "$node" join_cluster "$name-1@localhost" >"$SERVICES_DIR/join.out" 2>&1 \
                || { cat "$SERVICES_DIR/join.out" >&2; die "$node could not join the cluster"; }
            rabbitmqctl -q -n "$node" start_app >/dev/null 2>&1
        fi
    done
    rabbitmqctl -q -n "$name-1@localhost" await_startup --timeout 60 >/dev/null
    local running
    running=$(rabbitmqctl -q -n "$name-1@localhost" eval \
        'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -dc '0-9')
    [ "$running" = 3 ] || die "the cluster $name runs ${running:-no} node(s), not 3"
    CLUSTER_AMQP_ADDRS=$(IFS=,; echo "${urls[*]}")
    CLUSTER_NODES=$(IFS=,; echo "${nodes[*]}")
    export CLUSTER_AMQP_ADDRS CLUSTER_NODES
    log "RabbitMQ cluster $name: ${nodes[*]}"
}

stop_rabbitmq_cluster() {
    local name=$1 i
    for i in 3 2 1; do stop_rabbitmq "$name-$i"; done
}

# kill_by_pid_file FILE: stops the process whose pid FILE holds (the node's own pid file), if
# it still runs; never a process found by a name pattern, which could be another user's node.
kill_by_pid_file() {
    local file=$1 pid
    [ -f "$file" ] || return 0
    pid=$(tr -dc '0-9' < "$file")
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        as_root kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && as_root kill -9 "$pid" 2>/dev/null
    fi
    as_root rm -f "$file"
}

# start_postgres NAME [PORT]: a private cluster in target/services/postgres-NAME, on PORT
# (default: a free one); fsync and full-page writes off, unless PG_DURABLE=1 (the server's
# defaults: what a production server does on commit).
# Exports DATABASE_URL_PG (a database named cqrs) and PG_PORT.
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
start_postgres() {
    local name=${1:-cqrs}
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || { apt_install postgresql; PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1); }
    local dir=$SERVICES_DIR/postgres-$name
    mkdir -p "$dir"
    as_root chown postgres:postgres "$dir"
    local data=$dir/data
    local pg="as_root -u postgres"
    run_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sudo -u postgres sh -c "$*"; fi; }
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initialising PostgreSQL in $data"
        run_pg "'$PG_BIN/initdb' -D '$data' -U postgres -A trust --no-sync -E UTF8 >'$dir/initdb.log' 2>&1" \
            || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    fi
    if run_pg "'$PG_BIN/pg_ctl' -D '$data' status" >/dev/null 2>&1; then
        PG_PORT=$(cat "$dir/port")
        log "reusing PostgreSQL on port $PG_PORT"
    else
        PG_PORT=${2:-$(free_port)}
        echo "$PG_PORT" > "$dir/port.tmp" && as_root install -m 644 "$dir/port.tmp" "$dir/port" && rm -f "$dir/port.tmp"
        local durability="-c fsync=off -c full_page_writes=off"
        [ "${PG_DURABLE:-0}" = 1 ] && durability=""
        log "starting PostgreSQL on 127.0.0.1:$PG_PORT${durability:+ ($durability)}"
        run_pg "'$PG_BIN/pg_ctl' -D '$data' -l '$dir/server.log' -w -t 60 -o \"-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1 $durability -c max_connections=200\" start" >/dev/null \
            || { tail -30 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
    fi
    run_pg "'$PG_BIN/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -tAc \"SELECT 1 FROM pg_database WHERE datname='cqrs'\" | grep -q 1 || '$PG_BIN/createdb' -h 127.0.0.1 -p $PG_PORT -U postgres cqrs" \
        || die "could not create database cqrs"
    export PG_PORT PG_BIN
    export DATABASE_URL_PG="postgres://postgres@127.0.0.1:$PG_PORT/cqrs"
}

stop_postgres() {
    local name=${1:-cqrs}
    local data=$SERVICES_DIR/postgres-$name/data
    [ -f "$data/PG_VERSION" ] || return 0
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$data' -m fast stop" >/dev/null 2>&1 && log "stopped PostgreSQL"
    else
        sudo -u postgres "$PG_BIN/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 && log "stopped PostgreSQL"
    fi
    return 0
}

# createdb_pg NAME: a fresh database on the private server; prints its URL.
createdb_pg() {
    local db=$1
    "$PG_BIN/dropdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres --if-exists "$db" >/dev/null 2>&1 || true
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db" || die "createdb $db failed"
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$db"
}
