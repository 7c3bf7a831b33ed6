# %postun of @NAME@, as Fedora's %systemd_postun_with_restart: $1 is how
# many instances remain: 1 or more on upgrade (this is the old package's
# %postun, run after the new one is in place), 0 on removal.
unit=@UNIT@
command -v systemctl >/dev/null 2>&1 || exit 0
case "$(systemctl is-system-running 2>/dev/null)" in
  ""|offline|unknown) exit 0 ;;
esac
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -ge 1 ]; then
  # Upgrade: restart the service if it was running, onto the new binary.
  systemctl try-restart "$unit" >/dev/null 2>&1 || :
fi
exit 0
