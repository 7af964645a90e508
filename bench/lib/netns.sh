# Throwaway network namespaces for the bench scripts (sourced): the caller
# sets WORK (a temporary directory) and appends to PIDS what it starts;
# every namespace made by `newns` and everything in PIDS is removed on exit.
NAMESPACES=()
PIDS=()

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

newns() {
    ip netns del "$1" 2>/dev/null || true
    ip netns add "$1"
    NAMESPACES+=("$1")
    ip -n "$1" link set lo up
    # No IPv6 autoconf chatter on the links.
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
}
