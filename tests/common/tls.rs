//! Certificates and TLS clients for the TLS tests.
//!
//! [`Pki`] is a throwaway CA in a temporary directory that issues server
//! and client certificates (rcgen, ECDSA P-256) to files, as an operator's
//! CA would. The clients are the project Python's: `ZEO.ClientStorage`
//! with an `ssl` context ([`zeo_commit`], [`ZeoClient`]) and a bare
//! `ssl` socket that reports what it saw of the server ([`probe`]).

use super::runzeo::{python, run_python, RunZeoSsl};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use serde_json::Value as Json;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Bound for one Python client run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A certificate file and its key file.
#[derive(Clone, Debug)]
pub struct Issued {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A CA and the certificates it issued, in a temporary directory.
pub struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    ca_path: PathBuf,
    next_serial: AtomicU64,
    dir: tempfile::TempDir,
}

impl Pki {
    /// A new CA named `name` (its certificate in `ca.pem`).
    pub fn new(name: &str) -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("zeoraid-pki-")
            .tempdir()
            .expect("tempdir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = params.self_signed(&ca_key).expect("self-signed CA");
        let ca_path = dir.path().join("ca.pem");
        fs::write(&ca_path, ca.pem()).expect("write ca.pem");
        Pki {
            ca,
            ca_key,
            ca_path,
            next_serial: AtomicU64::new(0x1000),
            dir,
        }
    }

    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a certificate for `common_name` valid for `names` (IP
    /// addresses or DNS names), usable by servers and clients, to
    /// `FILE.pem` and `FILE.key` (replacing them); returns the files and
    /// the serial number (upper-case hex, as Python prints it).
    pub fn issue(&self, file: &str, common_name: &str, names: &[&str]) -> (Issued, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from(serial));
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &self.ca, &self.ca_key).expect("sign");
        let issued = Issued {
            certificate: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
        };
        fs::write(&issued.certificate, certificate.pem()).expect("write certificate");
        fs::write(&issued.key, key.serialize_pem()).expect("write key");
        (issued, format!("{serial:04X}"))
    }

    /// runzeo's `<ssl>` section for a server certificate from this CA
    /// valid for `names`, requiring client certificates signed by
    /// `clients`' CA.
    pub fn runzeo_ssl(&self, file: &str, names: &[&str], clients: &Pki) -> RunZeoSsl {
        let (server, _) = self.issue(file, file, names);
        RunZeoSsl {
            certificate: server.certificate,
            key: server.key,
            authenticate: clients.ca_path().to_path_buf(),
        }
    }
}

/// TOML lines of a TLS table: `ca` (when given) and the client's identity.
pub fn tls_table(header: &str, ca_key: &str, ca: Option<&Path>, identity: Option<&Issued>) -> String {
    let mut table = format!("{header}\n");
    if let Some(ca) = ca {
        table.push_str(&format!("{ca_key} = {:?}\n", ca.display().to_string()));
    }
    if let Some(identity) = identity {
        table.push_str(&format!(
            "certificate = {:?}\nkey = {:?}\n",
            identity.certificate.display().to_string(),
            identity.key.display().to_string()
        ));
    }
    table
}

/// The `ssl.SSLContext` every client script builds from its first three
/// arguments: the CA to trust, then a client certificate and key ("" for
/// none).
const CONTEXT: &str = r#"
import json, logging, ssl, sys
logging.basicConfig(level=logging.CRITICAL)
ca, cert, key = sys.argv[1:4]
context = ssl.create_default_context(cafile=ca)
if cert:
    context.load_cert_chain(cert, key)
"#;

fn context_args(ca: &Path, identity: Option<&Issued>) -> Vec<String> {
    let (cert, key) = identity.map_or((String::new(), String::new()), |i| {
        (i.certificate.display().to_string(), i.key.display().to_string())
    });
    vec![ca.display().to_string(), cert, key]
}

const COMMIT: &str = r#"
import transaction, ZODB
from ZEO.ClientStorage import ClientStorage
host, port = sys.argv[4].rsplit(':', 1)
storage = ClientStorage((host, int(port)), ssl=context, wait_timeout=20)
db = ZODB.DB(storage)
with db.transaction() as conn:
    conn.root()[sys.argv[5]] = sys.argv[6]
with db.transaction() as conn:
    print(json.dumps(dict(conn.root())))
db.close()
"#;

/// Commits `root[key] = value` through `ZEO.ClientStorage` with TLS and
/// returns the root as a fresh connection read it back.
pub fn zeo_commit(addr: SocketAddr, ca: &Path, identity: Option<&Issued>, key: &str, value: &str) -> Json {
    let mut args = context_args(ca, identity);
    args.extend([addr.to_string(), key.to_string(), value.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_python(&format!("{CONTEXT}{COMMIT}"), &args, CLIENT_TIMEOUT);
    assert!(
        output.status.success(),
        "TLS commit failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints the root as JSON")
}

const PROBE: &str = r#"
import socket
host, port = sys.argv[4].rsplit(':', 1)
answer = {}
try:
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            cert = tls.getpeercert()
            answer['subject'] = dict(x[0] for x in cert['subject'])['commonName']
            answer['serial'] = cert['serialNumber']
            head = tls.recv(4)
            answer['announced'] = len(head) == 4
except (ssl.SSLError, OSError) as e:
    answer['error'] = repr(e)
print(json.dumps(answer))
"#;

/// Connects with a bare TLS socket and reports the server certificate's
/// `subject` (common name) and `serial` (hex), whether the server then
/// `announced` its protocol (its first frame arrived), or the `error`.
pub fn probe(addr: SocketAddr, ca: &Path, identity: Option<&Issued>) -> Json {
    let mut args = context_args(ca, identity);
    args.push(addr.to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = run_python(&format!("{CONTEXT}{PROBE}"), &args, CLIENT_TIMEOUT);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "probe printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

const CLIENT: &str = r#"
import transaction, ZODB
from ZEO.ClientStorage import ClientStorage
host, port = sys.argv[4].rsplit(':', 1)
storage = ClientStorage((host, int(port)), ssl=context, wait_timeout=20)
db = ZODB.DB(storage)
print(json.dumps({'connected': storage.is_connected()}), flush=True)
for line in sys.stdin:
    key, value = line.rstrip("\n").split(" ", 1)
    with db.transaction() as conn:
        conn.root()[key] = value
    print(json.dumps({'committed': key}), flush=True)
db.close()
"#;

/// One `ZEO.ClientStorage` over TLS kept connected while the test goes on:
/// each [`ZeoClient::commit`] is a transaction on the same storage.
pub struct ZeoClient {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ZeoClient {
    pub fn connect(addr: SocketAddr, ca: &Path, identity: Option<&Issued>) -> ZeoClient {
        let mut args = context_args(ca, identity);
        args.push(addr.to_string());
        let mut child = Command::new(python())
            .arg("-c")
            .arg(format!("{CONTEXT}{CLIENT}"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env("PYTHONUNBUFFERED", "1")
            .env_remove("ZEO_MSGPACK")
            .spawn()
            .expect("spawn the Python client");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut client = ZeoClient { child, stdin, stdout };
        assert_eq!(client.next_line()["connected"], true);
        client
    }

    /// Commits `root[key] = value` on the connection made at start.
    pub fn commit(&mut self, key: &str, value: &str) {
        let stdin = self.stdin.as_mut().expect("client stdin");
        writeln!(stdin, "{key} {value}").expect("write to the client");
        stdin.flush().expect("flush to the client");
        assert_eq!(self.next_line()["committed"], key);
    }

    /// The script's next line; the script bounds its own waits (a commit
    /// that finds no connection fails after `wait_timeout`), and a failed
    /// script closes its stdout.
    fn next_line(&mut self) -> Json {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from the client");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("client said {line:?} ({e})"))
    }
}

impl Drop for ZeoClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
