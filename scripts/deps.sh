# scripts/deps.sh: sourced by ./run and ./test. Installs what a fresh Debian 12
# machine lacks (Debian packages with apt-get, npm packages from the lockfile)
# and says what it does. Idempotent: a second call installs nothing.

FS_APT_PACKAGES="build-essential cmake pkg-config libsqlite3-dev sqlite3 libcurl4-openssl-dev
 libsodium-dev libcjson-dev libmicrohttpd-dev libcmocka-dev clang libclang-rt-14-dev
 libmodpbase64-dev libgnutls28-dev
 nginx-light gnutls-bin openssl iproute2 strace procps nodejs npm curl ca-certificates time tzdata"

fs_say() { printf '==> %s\n' "$*"; }

fs_install_deps() {
	local missing=() p sudo=""
	for p in $FS_APT_PACKAGES; do
		# node and npm may come from outside Debian's packages (an image's own
		# build); a working command is as good as the package.
		case $p in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
		esac
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		[ "$(id -u)" -eq 0 ] || sudo=sudo
		fs_say "installing Debian packages: ${missing[*]}"
		$sudo apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null
	else
		fs_say "Debian packages: all present"
	fi
	local lock
	for lock in tests/interop/package-lock.json bench/package-lock.json; do
		[ -f "$lock" ] || continue
		local dir
		dir=$(dirname "$lock")
		if [ ! -d "$dir/node_modules" ] || [ "$lock" -nt "$dir/node_modules/.package-lock.json" ]; then
			fs_say "installing npm packages from $lock"
			(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
		else
			fs_say "npm packages in $dir: present"
		fi
	done
}

# fs_build DIR [cmake args...]: configure once, then build with every core.
fs_build() {
	local dir=$1
	shift
	fs_say "building in $dir"
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j"$(nproc)"
}
