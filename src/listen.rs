//! The client listener: a TCP address, or a Unix socket file zeoraid
//! creates and removes.
//!
//! A Unix socket file outlives the process that bound it: one left by a
//! zeoraid that crashed would make every later start fail with "address in
//! use". Such a file is replaced, but only once a connection to it was
//! refused, i.e. nothing listens there any more; a file that still answers
//! (another zeoraid, or a service that happens to use the path) or that is
//! not a socket at all stops the start instead. The file is removed when
//! zeoraid stops serving, unless another process replaced it meanwhile.

use slog::{warn, Logger};
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use crate::config::ListenAddress;

/// How long the probe of an existing socket file may wait for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot listen for ZEO clients on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to listen on {}: something already listens there (another zeoraid?); \
         stop it or choose another listen path", path.display()
    )]
    InUse { path: PathBuf },
    #[error(
        "refusing to listen on {}: the path exists and is not a socket; \
         remove it or choose another listen path", path.display()
    )]
    NotASocket { path: PathBuf },
    #[error(
        "refusing to listen on {}: cannot tell whether something listens there ({source}); \
         remove the file if nothing does", path.display()
    )]
    Probe {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove the stale socket file {}: {source}", path.display())]
    RemoveStale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot set listen_mode {mode:04o} on {}: {source}", path.display())]
    Mode {
        path: PathBuf,
        mode: u32,
        #[source]
        source: io::Error,
    },
}

/// A bound client listener.
pub enum FrontListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// An accepted client connection.
pub enum Accepted {
    Tcp(TcpStream, SocketAddr),
    Unix(UnixStream),
}

impl FrontListener {
    /// Binds `address`; for a Unix socket also returns the guard that
    /// removes its file, which the caller drops once it stopped serving.
    pub async fn bind(
        address: &ListenAddress,
        mode: Option<u32>,
        log: &Logger,
    ) -> Result<(FrontListener, Option<SocketFile>), ListenError> {
        let bind_error = |source| ListenError::Bind {
            address: address.to_string(),
            source,
        };
        match address {
            ListenAddress::Tcp(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
                Ok((FrontListener::Tcp(listener), None))
            }
            ListenAddress::Unix(path) => {
                remove_stale(path, log).await?;
                let listener = UnixListener::bind(path).map_err(bind_error)?;
                let file = SocketFile::new(path).map_err(bind_error)?;
                if let Some(mode) = mode {
                    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
                        ListenError::Mode {
                            path: path.clone(),
                            mode,
                            source,
                        }
                    })?;
                }
                Ok((FrontListener::Unix(listener), Some(file)))
            }
        }
    }

    /// Where clients reach it, as the logs show it: the bound port when
    /// `listen` asked for port 0.
    pub fn local(&self) -> io::Result<String> {
        match self {
            FrontListener::Tcp(listener) => Ok(listener.local_addr()?.to_string()),
            FrontListener::Unix(listener) => {
                let addr = listener.local_addr()?;
                Ok(addr
                    .as_pathname()
                    .map_or_else(String::new, |p| p.display().to_string()))
            }
        }
    }

    pub async fn accept(&self) -> io::Result<Accepted> {
        match self {
            FrontListener::Tcp(listener) => {
                let (stream, peer) = listener.accept().await?;
                Ok(Accepted::Tcp(stream, peer))
            }
            FrontListener::Unix(listener) => Ok(Accepted::Unix(listener.accept().await?.0)),
        }
    }
}

/// Removes a socket file at `path` that nothing listens on any more.
async fn remove_stale(path: &Path, log: &Logger) -> Result<(), ListenError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(ListenError::Probe {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !metadata.file_type().is_socket() {
        return Err(ListenError::NotASocket {
            path: path.to_owned(),
        });
    }
    let probe = tokio::time::timeout(PROBE_TIMEOUT, UnixStream::connect(path)).await;
    match probe {
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        Ok(Err(source)) => {
            return Err(ListenError::Probe {
                path: path.to_owned(),
                source,
            })
        }
        // Connected, or a listener too busy to answer: in use either way.
        Ok(Ok(_)) | Err(_) => {
            return Err(ListenError::InUse {
                path: path.to_owned(),
            })
        }
    }
    fs::remove_file(path).map_err(|source| ListenError::RemoveStale {
        path: path.to_owned(),
        source,
    })?;
    warn!(log, "removed a stale socket file nothing listened on (left by a zeoraid that did not stop cleanly?)";
        "path" => %path.display());
    Ok(())
}

/// The socket file zeoraid bound, removed when dropped, unless it is no
/// longer the file bound (another process replaced it meanwhile).
pub struct SocketFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl SocketFile {
    fn new(path: &Path) -> io::Result<SocketFile> {
        let metadata = fs::symlink_metadata(path)?;
        Ok(SocketFile {
            path: path.to_owned(),
            identity: (metadata.dev(), metadata.ino()),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}
