#!/usr/bin/env bash
# Start MetaTrader 5 under Wine and our bridge next to it.
# First start (empty /home/wine volume): create the Wine prefix, install Windows Python with
# MetaTrader5 (the bridge needs nothing else), and the MT5 terminal; this downloads from python.org, PyPI and
# MetaQuotes and takes minutes. Later starts reuse the prefix. Both installers are run only
# after fetch-verified checked them against the pinned SHA-256 (build args) or took the
# user's own copy from /installers: nothing unverified runs.
# Credentials (MT5_LOGIN, MT5_PASSWORD, MT5_SERVER) and MT5_BRIDGE_TOKEN come from the
# environment; the bridge reads them itself and never logs them (the bot never sends credentials).
# The bridge speaks TLS with the compose secrets mt5_bridge_cert / mt5_bridge_key (Windows Python
# sees /run/secrets as Z:\run\secrets); MT5_BRIDGE_CERT_FILE / MT5_BRIDGE_KEY_FILE override them.
set -euo pipefail

PYTHON_VERSION="${WINE_PYTHON_VERSION:-3.11.9}"
METATRADER5_VERSION="${METATRADER5_VERSION:-5.0.6231}"
PYTHON_WIN='C:\Python\python.exe'
PYTHON_UNIX="$WINEPREFIX/drive_c/Python/python.exe"
TERMINAL_UNIX="$WINEPREFIX/drive_c/Program Files/MetaTrader 5/terminal64.exe"
export MT5_PATH='C:\Program Files\MetaTrader 5\terminal64.exe'
export MT5_BRIDGE_CERT_FILE="${MT5_BRIDGE_CERT_FILE:-Z:\run\secrets\mt5_bridge_cert}"
export MT5_BRIDGE_KEY_FILE="${MT5_BRIDGE_KEY_FILE:-Z:\run\secrets\mt5_bridge_key}"

say() { echo "mt5-wine: $*" >&2; }

Xvfb :99 -screen 0 1280x800x24 -nolisten tcp &
wineboot --init

if [ ! -f "$PYTHON_UNIX" ]; then
  say "installing Windows Python $PYTHON_VERSION"
  fetch-verified "python-$PYTHON_VERSION-amd64.exe" \
    "https://www.python.org/ftp/python/$PYTHON_VERSION/python-$PYTHON_VERSION-amd64.exe" \
    "${WINE_PYTHON_SHA256:-}" /tmp/python.exe
  wine /tmp/python.exe /quiet InstallAllUsers=0 'TargetDir=C:\Python' PrependPath=0 Include_test=0
  rm -f /tmp/python.exe
  wine "$PYTHON_WIN" -m pip install --no-warn-script-location \
    "MetaTrader5==$METATRADER5_VERSION"
fi

if [ ! -f "$TERMINAL_UNIX" ]; then
  say "installing the MetaTrader 5 terminal"
  fetch-verified mt5setup.exe "https://download.mql5.com/cdn/web/metaquotes.software.corp/mt5/mt5setup.exe" \
    "${MT5_SETUP_SHA256:-}" /tmp/mt5setup.exe
  wine /tmp/mt5setup.exe /auto
  for _ in $(seq 1 120); do [ -f "$TERMINAL_UNIX" ] && break; sleep 5; done
  rm -f /tmp/mt5setup.exe
  [ -f "$TERMINAL_UNIX" ] || { say "terminal64.exe did not appear after installation"; exit 1; }
fi

say "starting the terminal and the TLS bridge on port 18812"
wine "$TERMINAL_UNIX" &
cd /opt/tradewatch
exec wine "$PYTHON_WIN" -m mt5bridge.server --backend metatrader5 --host 0.0.0.0 --port 18812
