# %preun of @NAME@, as Fedora's %systemd_preun: $1 is how many instances
# remain after this transaction: 0 on removal, 1 or more on upgrade, when
# nothing is done here.
unit=@UNIT@
command -v systemctl >/dev/null 2>&1 || exit 0
if [ "$1" -eq 0 ]; then
  systemctl --no-reload disable "$unit" >/dev/null 2>&1 || :
  case "$(systemctl is-system-running 2>/dev/null)" in
    ""|offline|unknown) ;;
    *) systemctl stop "$unit" >/dev/null 2>&1 || : ;;
  esac
fi
exit 0
