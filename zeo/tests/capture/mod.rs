//! Reads the real ZEO captures in `tests/fixtures/zeo-capture/` (format in
//! its README): one frame per line, `cN C>S <hex>` / `cN S>C <hex>`, the
//! first frame of each direction being the handshake.

#![allow(dead_code)]

use bytes::Bytes;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

/// What a frame's payload is, given the connection's handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The protocol announcement or answer (`Z5`, `M5`, `ruok`, `Z4`, ...).
    Handshake,
    /// A pickle (`Z`) message.
    Pickle,
    /// A msgpack (`M`) message.
    Msgpack,
    /// The JSON answer to `ruok`.
    RuokJson,
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub file: String,
    pub line: usize,
    pub conn: String,
    pub dir: Dir,
    pub kind: Kind,
    /// Whether the connection's client is ClientStorage or runzeo's own
    /// encoder (false for the hand-written raw client, whose pickles come
    /// from the stdlib pickler with memo opcodes).
    pub zeo_encoder: bool,
    pub raw: Bytes,
    pub payload: Bytes,
}

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/zeo-capture")
}

/// Connections driven by `tools/rawclient.py` rather than ClientStorage
/// (from the scenario table of the fixtures' README).
fn raw_client(file: &str, conn: &str) -> bool {
    matches!(
        (file, conn),
        ("s05_errors", "c3")
            | ("s11_heartbeat_ruok", "c2")
            | ("s11_heartbeat_ruok", "c3")
            | ("s17_restore_tid_order", "c1")
    ) || file == "s15_cross_encoding"
}

pub fn all_frames() -> Vec<Frame> {
    let mut paths: Vec<_> = std::fs::read_dir(fixtures_dir())
        .expect("fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert_eq!(paths.len(), 17, "expected the 17 captured scenarios");
    paths.iter().flat_map(frames_of).collect()
}

fn frames_of(path: &PathBuf) -> Vec<Frame> {
    let file = path.file_stem().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).expect("capture file");
    // Per connection: the client's protocol letter once both handshake frames were seen.
    let mut seen_handshake: HashMap<(String, Dir), bool> = HashMap::new();
    let mut letter: HashMap<String, u8> = HashMap::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        let (conn, dir, hex) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let dir = match dir {
            "C>S" => Dir::ClientToServer,
            "S>C" => Dir::ServerToClient,
            other => panic!("{file}:{}: bad direction {other}", i + 1),
        };
        let raw = Bytes::from(hex::decode(hex).expect("hex frame"));
        let len = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        assert_eq!(len, raw.len() - 4, "{file}:{}: length prefix", i + 1);
        let payload = raw.slice(4..);
        let first = !seen_handshake.contains_key(&(conn.to_owned(), dir));
        seen_handshake.insert((conn.to_owned(), dir), true);
        let kind = if first {
            if dir == Dir::ClientToServer {
                letter.insert(conn.to_owned(), payload[0]);
            }
            Kind::Handshake
        } else {
            match letter.get(conn) {
                Some(b'Z') => Kind::Pickle,
                Some(b'M') => Kind::Msgpack,
                Some(b'r') => Kind::RuokJson,
                other => panic!("{file}:{}: frame after handshake {other:?}", i + 1),
            }
        };
        out.push(Frame {
            zeo_encoder: !raw_client(&file, conn),
            file: file.clone(),
            line: i + 1,
            conn: conn.to_owned(),
            dir,
            kind,
            raw,
            payload,
        });
    }
    out
}
