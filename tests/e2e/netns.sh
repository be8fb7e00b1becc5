#!/usr/bin/env bash
# Namespaces for the end-to-end test (tests/integration/e2e.rs): one network and mount
# namespace per master, as on real hosts, joined by a bridge in a namespace of its own.
# Every namespace is anonymous and held by a process of this script, so nothing global
# (no /run/netns entry, no link, no mount) is left on the machine: a namespace disappears
# with the last process in it.
#
#   unshare --net -- netns.sh switch WATCH_PID
#       the switch: a bridge br0. Prints "ready", then holds the namespace.
#   unshare --mount --net --propagation private -- netns.sh master ROOT SCRATCH WATCH_PID
#       a master: lo up; /etc and /var/lib overlaid (upper layers on a tmpfs at SCRATCH) so
#       that the bundle's target folders can be mount points without touching the host; then
#       ROOT/etc/kubernetes, ROOT/var/lib/kubernetes, ROOT/usr/local/bin and
#       ROOT/etc/systemd/system bind-mounted at /etc/kubernetes, /var/lib/kubernetes,
#       /usr/local/bin and /etc/systemd/system. Prints "ready", then holds the namespace.
#   netns.sh plug SWITCH_PID MASTER_PID INDEX ADDRESS/PREFIX
#       a veth pair: one end on br0, the other the master's eth0 with ADDRESS.
#
# A holder leaves on SIGTERM, or once WATCH_PID (the test process) is gone, so a test killed
# with SIGKILL leaves nothing running either. Leaving, it SIGKILLs every process in its own
# network namespace (the daemons started inside it), never one outside it.
set -euo pipefail

die() {
	echo "netns.sh: $*" >&2
	exit 1
}

# Every process in this script's network namespace but itself, SIGKILLed until none is left.
sweep() {
	local mine proc pid round
	mine=$(readlink /proc/$$/ns/net)
	# Run outside a private namespace, this would match the whole host: refuse.
	[[ $mine != "$(readlink /proc/1/ns/net)" ]] || return 0
	for round in $(seq 1 100); do
		local left=0
		for proc in /proc/[0-9]*; do
			pid=${proc#/proc/}
			[[ $pid != "$$" && $pid != "$BASHPID" ]] || continue
			if [[ $(readlink "$proc/ns/net" 2>/dev/null) == "$mine" ]]; then
				kill -KILL "$pid" 2>/dev/null || true
				left=1
			fi
		done
		((left)) || return 0
		((round < 100)) && sleep 0.1
	done
	echo "netns.sh: processes survived SIGKILL in $mine" >&2
}

hold() {
	local watch=$1
	trap 'sweep; exit 0' TERM INT
	echo ready
	while kill -0 "$watch" 2>/dev/null; do
		sleep 1 &
		wait $! || true
	done
	sweep
}

case ${1-} in
switch)
	(($# == 2)) || die "usage: netns.sh switch WATCH_PID"
	ip link set lo up
	ip link add br0 type bridge
	ip link set br0 up
	hold "$2"
	;;
master)
	(($# == 4)) || die "usage: netns.sh master ROOT SCRATCH WATCH_PID"
	root=$2
	scratch=$3
	[[ $(readlink /proc/$$/ns/mnt) != "$(readlink /proc/1/ns/mnt)" ]] ||
		die "not in a private mount namespace: run under unshare --mount"
	ip link set lo up
	mount -t tmpfs -o mode=0700 e2e-overlay "$scratch"
	for lower in /etc /var/lib; do
		name=${lower//\//_}
		mkdir "$scratch/upper$name" "$scratch/work$name"
		mount -t overlay e2e-overlay \
			-o "lowerdir=$lower,upperdir=$scratch/upper$name,workdir=$scratch/work$name" "$lower"
	done
	for folder in /etc/kubernetes /var/lib/kubernetes /usr/local/bin /etc/systemd/system; do
		(umask 022 && mkdir -p "$root$folder" "$folder")
		mount --bind "$root$folder" "$folder"
	done
	hold "$4"
	;;
plug)
	(($# == 5)) || die "usage: netns.sh plug SWITCH_PID MASTER_PID INDEX ADDRESS/PREFIX"
	switch=$2
	master=$3
	index=$4
	address=$5
	nsenter -t "$switch" -n ip link add "sw$index" type veth peer name "eth$index"
	nsenter -t "$switch" -n ip link set "sw$index" master br0 up
	nsenter -t "$switch" -n ip link set "eth$index" netns "$master"
	nsenter -t "$master" -n ip link set "eth$index" name eth0
	nsenter -t "$master" -n ip addr add "$address" dev eth0
	nsenter -t "$master" -n ip link set eth0 up
	;;
*)
	die "usage: netns.sh switch|master|plug ..."
	;;
esac
