#!/usr/bin/env bash
# What the tests need from Debian beside Python: Chromium (the nurse page is tested in a real
# headless browser; Playwright drives Debian's package and never downloads one of its own) and
# nginx (two alert services are tested behind the shipped deploy/nginx configuration).
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-dejavu-core)
{ command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } || missing+=(nginx-light)
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != "0" ]; then SUDO=sudo; else SUDO=""; fi
echo "installing Debian's ${missing[*]} for the tests" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
