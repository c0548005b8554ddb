//! `listen` and `listen_mode`: where ZEO clients connect, a TCP address
//! or a Unix socket path (as a member's `address`, anything with a '/').

use super::model::{ListenAddress, DEFAULT_LISTEN};
use super::validate::{socket_addr, unix_socket_path, Problems};

/// `listen`; `None` when set but invalid (the problem is recorded).
pub(super) fn address(p: &mut Problems, raw: Option<&str>) -> Option<ListenAddress> {
    match raw {
        Some(text) if text.contains('/') => match unix_socket_path(text) {
            Ok(path) => Some(ListenAddress::Unix(path)),
            Err(why) => {
                p.push("listen", why);
                None
            }
        },
        _ => socket_addr(p, "listen", EXPECTED, raw, DEFAULT_LISTEN).map(ListenAddress::Tcp),
    }
}

const EXPECTED: &str = "host:port (an IP address or a host name) or a Unix socket path";

/// `listen_mode`: octal permission bits as `chmod` takes them ("0660"),
/// only for a Unix socket `listen` (`valid_listen`, when valid). A string
/// rather than a TOML integer, which would read `660` as decimal.
pub(super) fn mode(p: &mut Problems, raw: Option<&str>, valid_listen: Option<&ListenAddress>) -> Option<u32> {
    let text = raw?;
    let mode = u32::from_str_radix(text, 8).ok().filter(|mode| *mode <= 0o777);
    if mode.is_none() {
        p.push(
            "listen_mode",
            format!("expected octal permission bits such as \"0660\", got {text:?}"),
        );
    }
    if let Some(ListenAddress::Tcp(_)) = valid_listen {
        p.push("listen_mode", "only applies when listen is a Unix socket path");
    }
    mode
}

/// A Unix socket is reached only through the host's file system, where
/// its file mode and directory guard it: TLS is not offered there
/// (refused rather than silently served in clear text).
pub(super) fn refuse_tls_on_unix(p: &mut Problems, valid_listen: Option<&ListenAddress>, tls: bool) {
    if tls && matches!(valid_listen, Some(ListenAddress::Unix(_))) {
        p.push(
            "tls",
            "zeoraid does not speak TLS on a Unix socket listen path: listen on host:port for TLS, or remove [tls] and \
             guard the socket with listen_mode and its directory's permissions",
        );
    }
}
