//! An accepted client connection, plain TCP, TLS or a Unix socket, as the
//! two boxed halves the session's reader and writer tasks own, and who is
//! at its other end.
//!
//! A plain socket splits into owned halves with no lock between them, as
//! before TLS existed; a TLS stream is one state machine for both
//! directions, so its halves share tokio's split lock (taken per read and
//! per write, never across an await).

use std::fmt;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::server::TlsStream;

/// The client as logs and the `/details` sessions show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientPeer {
    Tcp(SocketAddr),
    /// A Unix socket peer has no address (clients do not bind theirs):
    /// the kernel's credentials of the process that connected name it
    /// instead, when it gives them.
    Unix {
        pid: Option<i32>,
        uid: Option<u32>,
    },
}

impl fmt::Display for ClientPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientPeer::Tcp(addr) => write!(f, "{addr}"),
            ClientPeer::Unix { pid, uid } => {
                f.write_str("unix")?;
                if let Some(pid) = pid {
                    write!(f, " pid {pid}")?;
                }
                if let Some(uid) = uid {
                    write!(f, " uid {uid}")?;
                }
                Ok(())
            }
        }
    }
}

pub struct ClientStream {
    pub(super) reader: Box<dyn AsyncRead + Unpin>,
    pub(super) writer: Box<dyn AsyncWrite + Unpin>,
}

impl ClientStream {
    /// With `TCP_NODELAY`: a ZEO reply is a small frame a client waits
    /// for, Nagle would hold it back.
    pub fn plain(stream: TcpStream) -> ClientStream {
        let _ = stream.set_nodelay(true);
        let (reader, writer) = stream.into_split();
        ClientStream {
            reader: Box::new(reader),
            writer: Box::new(writer),
        }
    }

    /// A connection whose TLS handshake is done.
    pub fn tls(stream: TlsStream<TcpStream>) -> ClientStream {
        let _ = stream.get_ref().0.set_nodelay(true);
        let (reader, writer) = tokio::io::split(stream);
        ClientStream {
            reader: Box::new(reader),
            writer: Box::new(writer),
        }
    }

    /// A connection accepted on a Unix socket, with who made it.
    pub fn unix(stream: UnixStream) -> (ClientStream, ClientPeer) {
        let credentials = stream.peer_cred().ok();
        let peer = ClientPeer::Unix {
            pid: credentials.and_then(|c| c.pid()),
            uid: credentials.map(|c| c.uid()),
        };
        let (reader, writer) = stream.into_split();
        let stream = ClientStream {
            reader: Box::new(reader),
            writer: Box::new(writer),
        };
        (stream, peer)
    }
}
