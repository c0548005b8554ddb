//! An accepted client connection, plain or TLS, as the two boxed halves
//! the session's reader and writer tasks own.
//!
//! A plain socket splits into owned halves with no lock between them, as
//! before TLS existed; a TLS stream is one state machine for both
//! directions, so its halves share tokio's split lock (taken per read and
//! per write, never across an await).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

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
}
