# %post of @NAME@, as Fedora's %systemd_post: $1 is how many instances of the
# package are installed once this transaction ends: 1 on first install, 2 or
# more on upgrade. Must succeed in a chroot or image build without a running
# systemd, where systemctl says "offline" and only edits symlinks.
unit=@UNIT@
command -v systemctl >/dev/null 2>&1 || exit 0
case "$(systemctl is-system-running 2>/dev/null)" in
  ""|offline|unknown) running=no ;;
  *) running=yes ;;
esac
if [ "$running" = yes ]; then
  systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ]; then
  # First install: enable or not as the system's presets say.
  systemctl --no-reload preset "$unit" >/dev/null 2>&1 || :
fi
exit 0
