# Shared by the benchmarks that drive HTTP servers on loopback (sourced, not run): free ports,
# waiting for a listener, wrk with a Lua script that posts a new bid per request, the benchmarks'
# arguments, and the README's build of `sdp`.

# wrk is a Debian package: installed with apt-get when missing and run as root.
require_wrk() {
    if ! command -v wrk >/dev/null; then
        if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else
            echo "$0 needs wrk: sudo apt-get install wrk" >&2; exit 2; fi
    fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "nothing listens on $1" >&2; exit 1; }

# Writes to $1 a wrk script that posts a new transaction per request, so every request is stored
# and processed (no duplicates).
write_bid_script() {
    cat > "$1" <<'LUA'
local counter = 0
local thread_id = 0
setup = function(thread) thread:set("tid", thread_id); thread_id = thread_id + 1 end
request = function()
  counter = counter + 1
  local body = string.format('{"tx_id":"wrk-%d-%d","app_uid":"u","campaign_item_id":%d,"win_price":5}', tid, counter, counter % 100)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
}

# Sets `seconds` (the first argument, default 10) and `rates` (the rest, default the given list),
# the usage of the HTTP benchmarks: `seconds_and_rates "1000 5000" "$@"`.
seconds_and_rates() {
    local defaults=$1
    shift
    seconds=${1:-10}
    shift || true
    rates=("$@")
    [ ${#rates[@]} -gt 0 ] || read -r -a rates <<< "$defaults"
}

# Builds `sdp` as the README's first command does: `sdp local` and `sdp load` need neither the AWS
# commands nor the SQL engine.
build_sdp() {
    cargo build --release --locked -p sdp --no-default-features --bin sdp >&2
}
